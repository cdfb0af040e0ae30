"""What the demo's health-insurance support assistant is asked, and what it finds and answers.

Plain data for :mod:`traces.demo`; the generator varies these deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POLICIES = "https://policies.example-health.com"
FORMULARY = "https://formulary.example-health.com"


@dataclass(frozen=True)
class Scenario:
    question: str
    answer: str
    documents: list[tuple[str, str]]  # (doc_uri, text), most relevant first
    follow_up: str
    follow_up_answer: str
    tool: tuple[str, dict[str, Any], dict[str, Any]] | None = None  # (name, arguments, result)


SCENARIOS: list[Scenario] = [
    Scenario(
        "Is physiotherapy after knee surgery covered by my plan?",
        "Yes. Your Silver plan covers up to 20 physiotherapy sessions per year after surgery, with a 20% co-pay. "
        "Ask your surgeon for a referral first; without it the sessions are not reimbursed.",
        [
            (
                f"{POLICIES}/silver/physio.html",
                "Physiotherapy: up to 20 sessions per calendar year following a surgical procedure. Co-insurance 20%.",
            ),
            (
                f"{POLICIES}/silver/referrals.html",
                "Rehabilitation services require a written referral from the treating physician.",
            ),
            (
                f"{POLICIES}/faq/knee.html",
                "Knee replacement is covered at 80% after the deductible for in-network hospitals.",
            ),
        ],
        "Does that include hydrotherapy sessions?",
        "Hydrotherapy counts toward the same 20-session limit when a licensed physiotherapist gives it "
        "as part of your rehabilitation plan.",
    ),
    Scenario(
        "Can I take ibuprofen while on warfarin?",
        "It is best to avoid ibuprofen with warfarin: together they raise the risk of bleeding. Paracetamol is usually "
        "the safer choice for pain, but please check with your doctor or pharmacist before changing medicines.",
        [
            (
                f"{FORMULARY}/warfarin.html",
                "Warfarin interactions: NSAIDs such as ibuprofen and naproxen increase bleeding risk and should be "
                "avoided.",
            ),
            (
                f"{FORMULARY}/paracetamol.html",
                "Paracetamol (acetaminophen) is the preferred analgesic for patients on anticoagulants, "
                "at usual doses.",
            ),
            (
                f"{FORMULARY}/ibuprofen.html",
                "Ibuprofen: non-steroidal anti-inflammatory drug. Contraindicated with anticoagulants "
                "unless supervised.",
            ),
        ],
        "What about aspirin for a headache?",
        "Aspirin also thins the blood and adds to warfarin's effect, so avoid it for headaches unless your doctor "
        "prescribed it. Paracetamol remains the usual choice.",
    ),
    Scenario(
        "How do I get reimbursed for an emergency visit abroad?",
        "Send the itemised hospital invoice, proof of payment and the discharge summary through the app within 90 "
        "days. Emergency care abroad is reimbursed up to the amount your plan would pay at home.",
        [
            (
                f"{POLICIES}/travel/emergency.html",
                "Emergency treatment abroad is reimbursed up to domestic tariffs. Claims within 90 days.",
            ),
            (
                f"{POLICIES}/claims/documents.html",
                "Required documents: itemised invoice, proof of payment, medical report or discharge summary.",
            ),
        ],
        "Do I have to pay the hospital upfront?",
        "Usually yes: pay and claim back. For a stay longer than 24 hours call the assistance line first; "
        "we can often guarantee payment directly with the hospital.",
    ),
    Scenario(
        "What is my deductible for 2026?",
        "Your 2026 deductible is $1,500 for individual coverage. You have met $420 of it so far this year.",
        [(f"{POLICIES}/silver/deductible.html", "Silver plan deductible 2026: $1,500 individual, $3,000 family.")],
        "Do prescriptions count toward it?",
        "Yes. What you pay for covered prescriptions counts toward both your deductible and your out-of-pocket "
        "maximum.",
        tool=(
            "get_member_balance",
            {"member_id": "M-20418", "year": 2026},
            {"deductible": 1500, "met": 420, "out_of_pocket_max": 6000, "currency": "USD"},
        ),
    ),
    Scenario(
        "Is the flu vaccine free at my pharmacy?",
        "Yes, the seasonal flu vaccine is covered at 100% at in-network pharmacies, with no co-pay.",
        [
            (
                f"{POLICIES}/preventive/vaccines.html",
                "Preventive vaccines (influenza, COVID-19, shingles for 50+) are covered at 100% in network.",
            ),
            (
                "https://pharmacies.example-health.com/network.html",
                "Most national pharmacy chains are in network. Check the directory before your visit.",
            ),
        ],
        "Can my kids get it there too?",
        "Children aged 3 and older can be vaccinated at most in-network pharmacies, also at no cost; "
        "younger children should get it at their paediatrician's.",
    ),
    Scenario(
        "My claim for an MRI was denied. Why?",
        "The MRI claim was denied because it was done without prior authorisation. You can appeal within 180 days; "
        "ask your doctor to send the medical necessity letter with the appeal.",
        [
            (
                f"{POLICIES}/silver/imaging.html",
                "Advanced imaging (MRI, CT, PET) requires prior authorisation except in emergencies.",
            ),
            (f"{POLICIES}/appeals.html", "Members may appeal a denied claim within 180 days of the decision."),
        ],
        "How do I start the appeal?",
        "Open the claim in the app and choose “Appeal this decision”, or mail the appeal form. Attach your doctor's "
        "letter of medical necessity; we decide within 30 days.",
        tool=(
            "get_claim_status",
            {"claim_id": "C-88412"},
            {"status": "DENIED", "reason": "NO_PRIOR_AUTH", "amount": 1840.0, "service_date": "2026-10-02"},
        ),
    ),
    Scenario(
        "Does my plan cover therapy for anxiety?",
        "Yes. Outpatient mental health visits are covered like any specialist visit: $30 co-pay per session, "
        "no limit on the number of sessions when they are medically necessary.",
        [
            (
                f"{POLICIES}/silver/mental-health.html",
                "Outpatient behavioural health: specialist co-pay applies ($30). No annual visit limit.",
            ),
            (f"{POLICIES}/parity.html", "Mental health benefits are provided at parity with medical benefits."),
        ],
        "Can I do the sessions by video?",
        "Yes. Telehealth therapy with an in-network provider is covered like an in-person visit, with the same "
        "$30 co-pay.",
    ),
    Scenario(
        "How much will a generic statin cost me per month?",
        "Generic atorvastatin is a Tier 1 drug on your plan: $10 for a 30-day supply at a retail pharmacy, "
        "or $25 for 90 days by mail order.",
        [(f"{FORMULARY}/tiers.html", "Tier 1 generics: $10 retail (30 days), $25 mail order (90 days).")],
        "Is brand-name Lipitor covered too?",
        "Lipitor is Tier 3 ($60 for 30 days). Because a generic exists, you pay the difference unless your doctor "
        "documents that the generic is not suitable for you.",
        tool=("lookup_formulary", {"drug": "atorvastatin"}, {"tier": 1, "retail_30": 10, "mail_90": 25}),
    ),
    Scenario(
        "Can I add my newborn to my plan?",
        "Yes. Add your baby within 30 days of birth through the app or by phone; coverage then starts from the date "
        "of birth.",
        [
            (
                f"{POLICIES}/enrolment/life-events.html",
                "Newborns must be enrolled within 30 days of birth; coverage is retroactive to birth.",
            )
        ],
        "What documents do I need for that?",
        "You will need the birth certificate and your member ID number. Upload both in the app under “Family”.",
    ),
    Scenario(
        "Is a second opinion before surgery covered?",
        "Yes, a second opinion from an in-network specialist is covered with your usual specialist co-pay.",
        [
            (
                f"{POLICIES}/silver/second-opinion.html",
                "Second surgical opinions are covered at the specialist co-pay when in network.",
            )
        ],
        "Does it have to be at a different hospital?",
        "No, but the second specialist must not work in the same practice as the first one.",
    ),
    Scenario(
        "What should I do if I think I'm having a heart attack?",
        "Call emergency services (911) right away. Do not drive yourself. Emergency care is always covered, "
        "in or out of network, without prior authorisation.",
        [
            (
                f"{POLICIES}/emergency.html",
                "Emergency services are covered without prior authorisation, in or out of network.",
            )
        ],
        "Will the ambulance be covered?",
        "Yes. Emergency ambulance transport is covered after a $150 co-pay, in or out of network.",
    ),
    Scenario(
        "Can I see a dermatologist without a referral?",
        "On your Silver PPO plan you can see an in-network dermatologist without a referral; the specialist co-pay "
        "of $30 applies.",
        [
            (f"{POLICIES}/silver/specialists.html", "PPO members may self-refer to in-network specialists."),
            (f"{POLICIES}/hmo/specialists.html", "HMO members need a referral from their primary care physician."),
        ],
        "What if I need a biopsy?",
        "A biopsy done in the dermatologist's office is covered at 80% after your deductible; the lab bills "
        "separately at the same rate.",
    ),
    Scenario(
        "Is a screening colonoscopy covered at 45?",
        "Yes. A screening colonoscopy from age 45 is preventive care, covered at 100% in network with no deductible.",
        [
            (
                f"{POLICIES}/preventive/cancer-screening.html",
                "Colorectal cancer screening from age 45: colonoscopy every 10 years covered at 100% in network.",
            ),
            (
                f"{POLICIES}/preventive/diagnostic-vs-screening.html",
                "If a polyp is removed during a screening colonoscopy, the procedure stays preventive; "
                "pathology fees may be subject to cost-sharing.",
            ),
        ],
        "What if they remove a polyp?",
        "The colonoscopy itself stays covered at 100%. The lab analysis of the polyp may be billed with your usual "
        "20% co-insurance after the deductible.",
    ),
    Scenario(
        "Find me an in-network pediatrician near 94110.",
        "Three in-network pediatricians are within 2 miles of 94110: Dr. Alvarez (Mission Kids Clinic), "
        "Dr. Chen (Bernal Pediatrics) and Dr. Okafor (Valencia Family Health). All accept new patients.",
        [
            (
                "https://providers.example-health.com/directory.html",
                "Use the provider directory to find in-network physicians by specialty and ZIP code.",
            )
        ],
        "Do any of them speak Spanish?",
        "Dr. Alvarez's practice lists Spanish among its languages. Call ahead to confirm an appointment slot.",
        tool=(
            "find_providers",
            {"specialty": "pediatrics", "zip": "94110", "radius_miles": 2},
            {
                "providers": [
                    {"name": "Dr. Maria Alvarez", "clinic": "Mission Kids Clinic", "distance_miles": 0.6},
                    {"name": "Dr. Wei Chen", "clinic": "Bernal Pediatrics", "distance_miles": 1.1},
                    {"name": "Dr. Ada Okafor", "clinic": "Valencia Family Health", "distance_miles": 1.8},
                ]
            },
        ),
    ),
    Scenario(
        "Are hearing aids covered for my father? He is 72 and on my plan.",
        "Yes. The Silver plan pays up to $1,500 per ear for hearing aids every 36 months, plus one hearing exam "
        "a year with an in-network audiologist.",
        [
            (
                f"{POLICIES}/silver/hearing.html",
                "Hearing aids: up to $1,500 per ear every 36 months. Annual hearing exam covered in network.",
            ),
            (
                f"{POLICIES}/silver/dependants.html",
                "Dependent parents enrolled on the plan receive the same benefits as the primary member.",
            ),
        ],
        "Does he need a referral for the hearing test?",
        "No referral is needed for the annual hearing exam with an in-network audiologist.",
    ),
]

# Handbook pages the retriever also brings back, less relevant than a scenario's own documents.
GENERAL_DOCUMENTS: list[tuple[str, str]] = [
    (
        f"{POLICIES}/silver/summary-of-benefits.html",
        "Silver PPO summary: $1,500 deductible, 20% co-insurance, $30 specialist co-pay, $6,000 out-of-pocket maximum.",
    ),
    (
        f"{POLICIES}/claims/how-to-claim.html",
        "Submit claims in the app or by mail within 90 days of the date of service. Keep itemised receipts.",
    ),
    (
        f"{POLICIES}/prior-authorisation.html",
        "Prior authorisation is needed for advanced imaging, planned hospital stays and specialty drugs.",
    ),
    (
        f"{POLICIES}/telehealth.html",
        "Telehealth visits with in-network providers cost the same as office visits; urgent-care video visits are $0.",
    ),
    (
        f"{POLICIES}/costs/out-of-pocket.html",
        "After you reach the out-of-pocket maximum, covered in-network services are paid at 100% for the year.",
    ),
    (
        "https://help.example-health.com/contact.html",
        "Member services: 1-800-555-0199, Monday to Friday 8am-8pm. 24/7 nurse line: 1-800-555-0123.",
    ),
]

# A third turn for longer conversations: (question, answer).
CLOSING_TURNS: list[tuple[str, str]] = [
    (
        "Thanks! Can you email me a summary?",
        "I can't send emails, but this conversation stays under Messages in the app, with links to the policy pages.",
    ),
    (
        "Who can I call if I have more questions?",
        "Member services are on 1-800-555-0199, Monday to Friday 8am-8pm. The nurse line (1-800-555-0123) is open "
        "24/7.",
    ),
    (
        "Is any of this different on the Gold plan?",
        "Gold members have a $750 deductible and a $20 specialist co-pay; otherwise the same rules apply.",
    ),
    ("Great, that's all for now.", "You're welcome. Take care!"),
]

TOOL_ERRORS: list[tuple[str, str]] = [
    ("TimeoutError", "{tool} timed out after 3 retries (30 s)"),
    ("ConnectionError", "claims-api.internal:443 refused the connection"),
    ("PermissionError", "member record M-20418 is locked for review"),
]
