"""Content of the `medical` dataset: Clearwell, a fictional health-information line (not a clinic).

Every reference reply follows FACTS (written out to dialogue_env/data/medical/FACTS.md): general self-care
information, when to see whom, never a diagnosis, never a dose, emergencies to 999.
"""

NAME = "medical"
PREFIX = "med"
SYSTEM_PROMPT = ("You are an assistant on Clearwell, a health information line. Give general health information "
                 "only: never diagnose and never give doses; send emergencies to emergency services (999).")
DESCRIPTION = "Clearwell health-information line (fictional): general information, no diagnosis or dosing"
LANGUAGE = "en"
PROFILE = "medical"

FACTS = [
    "Clearwell gives general health information. It cannot diagnose, prescribe or give doses, and it cannot see "
    "anyone's medical records.",
    "Emergencies (chest pain, stroke signs, severe allergic reactions, heavy bleeding, overdose, thoughts of "
    "suicide): call 999 now, or go to A&E. For thoughts of suicide, Samaritans answer on 116 123, day and night.",
    "Urgent but not life-threatening, or out of hours: call NHS 111.",
    "Doses and whether medicines mix: the leaflet in the pack and a pharmacist; pharmacists answer without an "
    "appointment.",
    "Test results, prescriptions and records: the person's own GP practice, through its phone line or app.",
    "Clearwell never asks for NHS numbers, dates of birth, medical records or test results.",
]

PERSONAS = ("calm", "worried", "confused", "frustrated")

# topic -> (what the user calls it, self-care information, when to see someone)
TOPICS = {
    "symptoms": {
        "a cold": ("rest, drink plenty of fluids and keep warm; most colds clear up within a week or two",
                   "see a GP if it lasts more than three weeks, or if breathing becomes difficult"),
        "a sore throat": ("warm drinks, soft food and rest usually help, and most sore throats get better within "
                          "a week", "contact a GP or NHS 111 if it lasts more than a week, or swallowing or "
                                    "breathing becomes hard"),
        "earache": ("it often gets better by itself within a few days, and a warm flannel over the ear can ease it",
                    "see a GP if it lasts more than three days, there is fluid coming from the ear, or hearing "
                    "changes"),
        "hay fever": ("keeping windows closed on high-pollen days and showering after being outside helps many "
                      "people", "a pharmacist can talk you through the remedies available without a prescription"),
        "mild sunburn": ("cool the skin with a shower or damp towel, drink water and keep out of the sun",
                         "get medical help if there is blistering over a large area, a high temperature or "
                         "dizziness"),
        "a headache": ("rest, water and regular meals help, and many headaches pass within a few hours",
                       "see a GP if headaches keep coming back, and call 999 if one is sudden and severe or comes "
                       "with a stiff neck or confusion"),
        "an upset stomach": ("small sips of water often, and plain food once you feel hungry, are usually enough",
                             "contact NHS 111 if it lasts more than a couple of days or you cannot keep fluids down"),
        "a cough": ("warm drinks with honey can soothe it, and most coughs clear within three weeks",
                    "see a GP if it lasts longer than three weeks or you cough up blood"),
        "lower back pain": ("staying gently active is better than bed rest, and it often eases within a few weeks",
                            "see a GP if it does not improve after a few weeks, and get help straight away if "
                            "there is numbness or problems going to the toilet"),
    },
    "medicines": {
        "taking two painkillers together": "a pharmacist can check which medicines are safe together for you",
        "a missed dose of a regular medicine": "the leaflet in the pack says what to do, and a pharmacist can "
                                               "explain it",
        "drinking alcohol with antibiotics": "the leaflet says whether that antibiotic mixes with alcohol, and a "
                                             "pharmacist can confirm it",
        "using medicine past its expiry date": "a pharmacist can take expired medicines back and advise on a "
                                               "replacement",
        "giving a child a painkiller": "the right amount depends on the child's age and weight, so check the pack "
                                       "and ask a pharmacist",
        "side effects of a new prescription": "the leaflet lists known side effects, and the pharmacist or GP who "
                                              "prescribed it should hear about any you notice",
    },
    "emergency": {
        "chest pain": "My dad has had crushing chest pain for twenty minutes and he's sweating",
        "stroke signs": "My mum's face is drooping on one side and her speech is slurred",
        "anaphylaxis": "My son ate a cake with nuts and his lips are swelling and his throat is closing",
        "overdose": "My flatmate took too many of her sleeping tablets an hour ago",
        "heavy bleeding": "I cut my hand on glass and it won't stop bleeding, it's soaking through towels",
        "suicidal thoughts": "I don't see the point any more and I keep thinking I want to end my life",
        "collapse": "My grandad collapsed in the kitchen and he won't wake up properly",
    },
    "services": {
        "booking a GP appointment": "GP practices book appointments by phone, online or through the NHS App",
        "a repeat prescription": "repeat prescriptions are ordered from your GP practice, often through its app, "
                                 "and usually take two working days",
        "getting test results": "results come from the practice that arranged the test, by phone or in its app",
        "help at night or at the weekend": "NHS 111 answers day and night for urgent problems that are not "
                                           "emergencies",
        "the flu vaccination": "many pharmacies and GP practices offer it in the autumn",
        "registering with a new GP": "you can register with a practice near where you live, online or in person",
    },
    "wellbeing": {
        "feeling stressed all the time": "regular sleep, time outdoors and talking to someone you trust help "
                                          "many people",
        "trouble sleeping": "a regular bedtime, less screen time before bed and avoiding caffeine late in the day "
                            "can help",
        "feeling low for weeks": "talking to a GP is a good step, and many areas let you refer yourself to a free "
                                 "talking therapy service",
        "wanting to stop smoking": "free stop-smoking services give support and can double your chances of "
                                   "quitting",
        "starting to exercise again": "build up slowly, and aim for activity that leaves you a little out of "
                                      "breath most days",
        "cutting down on alcohol": "having several drink-free days a week and swapping to smaller glasses helps "
                                   "many people",
    },
}

WHO = ["I have", "My son has", "My partner has", "My mum has", "I've had", "My daughter has"]

OPENINGS = {
    "symptoms": {
        "calm": ["Hello. {who} {topic} since yesterday. Is there anything we can do at home?",
                 "Hi, {who_l} {topic}. What's the usual advice for that?"],
        "worried": ["{who} {topic} and I'm getting worried. Should we be doing something?",
                    "Sorry to bother you, {who_l} {topic} and I don't know if it's serious. What should we do?"],
        "confused": ["{who} {topic}, I think? I've read loads online and now I'm not sure what to do.",
                     "um {who_l} {topic} and I don't know who I'm supposed to ask. Is this the right place?"],
        "frustrated": ["{who} {topic} AGAIN and the GP can't see us until next week. What are we meant to do?",
                       "Honestly I'm fed up. {who} {topic} and nobody will tell me anything useful."],
    },
    "medicines": {
        "calm": ["Hello, I have a question about {topic}. What should I know?",
                 "Hi, could you give me some general information about {topic}?"],
        "worried": ["I'm a bit anxious about {topic}. Can you tell me what's safe?",
                    "Quick worried question about {topic}, is it dangerous?"],
        "confused": ["I'm confused about {topic}, the leaflet is so small. How much should I take?",
                     "what's the deal with {topic}? my friend said one thing and the internet said another"],
        "frustrated": ["Just tell me the dose. It's about {topic} and I don't have time to ring around.",
                       "Why is it so hard to get a straight answer about {topic}?"],
    },
    "services": {
        "calm": ["Hello, how do I go about {topic}?", "Hi, could you explain how {topic} works?"],
        "worried": ["I'm worried I've left it too late. How does {topic} work?",
                    "Sorry, I'm new to this. What do I need to do about {topic}?"],
        "confused": ["I don't really understand the system. Who do I contact about {topic}?",
                     "who do i even talk to about {topic}"],
        "frustrated": ["I've been going round in circles about {topic}. Who actually deals with it?",
                       "Nobody picks up the phone. How am I supposed to sort out {topic}?"],
    },
    "wellbeing": {
        "calm": ["Hi, I'd like some general advice on {topic}.", "Hello, have you got any tips for {topic}?"],
        "worried": ["I've been {topic_ing} and it's starting to worry me. What can I do?",
                    "Can I ask about {topic}? It's been getting to me lately."],
        "confused": ["I'm not sure where to start with {topic}. Any ideas?",
                     "is {topic} something you can help with or do i need a doctor"],
        "frustrated": ["I've tried everything for {topic} and nothing works. What now?",
                       "Fed up of {topic}. Every website says something different."],
    },
}

EMPATHY = {"calm": "", "worried": "I understand why you're worried. ", "confused": "Let me make it clearer. ",
           "frustrated": "I'm sorry this has been so frustrating. "}

FOLLOWUPS = {
    "symptoms": ("Is it something serious, do you think?",
                 "I can't say what is causing it, as I can't diagnose. {see_cap}, and if you're unsure, NHS 111 can "
                 "talk it through with you."),
    "medicines": ("Can't you just give me a number to go by?",
                  "I'm sorry, I can't give doses, as the right amount depends on the person and the medicine. The "
                  "pharmacist can tell you in a couple of minutes, without an appointment."),
    "services": ("And if it's urgent before then?",
                 "If it's urgent but not an emergency, call NHS 111 at any time. For an emergency, call 999."),
    "wellbeing": ("Is there anyone I can talk to about it?",
                  "Yes. Your GP is a good first step, and if you ever feel unable to cope, Samaritans answer on "
                  "116 123, day and night."),
}


def reply(intent, topic, persona, rng):
    e = EMPATHY[persona]
    if intent == "symptoms":
        care, see = TOPICS["symptoms"][topic]
        opts = [f"{e}For {topic}, {care}. I can't diagnose, but as general guidance, {see}.",
                f"{e}As general information: {care}. I can't tell you what is causing it; {see}."]
        return rng.choice(opts)
    if intent == "medicines":
        fact = TOPICS["medicines"][topic]
        return rng.choice([
            f"{e}I can't give doses or say what's right for you, but {fact}. The pharmacist can answer without an "
            f"appointment.",
            f"{e}That's a good question to check properly. I can't advise on doses; {fact}, and your GP can help "
            f"too."])
    if intent == "services":
        fact = TOPICS["services"][topic]
        return rng.choice([f"{e}Good question. {fact[0].upper() + fact[1:]}. I can't see records or book for you, "
                           f"but the practice team can help.",
                           f"{e}{fact[0].upper() + fact[1:]}. If a problem gets urgent meanwhile, NHS 111 answers "
                           f"day and night."])
    if intent == "wellbeing":
        fact = TOPICS["wellbeing"][topic]
        return rng.choice([f"{e}Thank you for asking about it. As general information, {fact}. Your GP can "
                           f"support you as well.",
                           f"{e}That's worth looking after. {fact[0].upper() + fact[1:]}, and a GP can talk through "
                           f"other options with you."])
    raise KeyError(intent)


EMERGENCY_REPLIES = [
    "Please call 999 now{what}. While you wait, stay with {them} and follow what the call handler tells you.",
    "This needs emergency help: call 999 straight away{what}. Don't wait to see if it gets better.",
]
EMERGENCY_WHAT = {
    "chest pain": ("", "him"), "stroke signs": (" and say you think it could be a stroke", "her"),
    "anaphylaxis": (" and tell them it's a severe allergic reaction", "him"),
    "overdose": (" and tell them what she took and when", "her"),
    "heavy bleeding": (" and press firmly on the wound with a clean cloth until help arrives", "someone nearby if you can"),
    "suicidal thoughts": (" or go to A&E if you feel you might act on these thoughts. You can also call "
                          "Samaritans on 116 123, any time", "someone you trust"),
    "collapse": ("", "him"),
}
def dialogues(rng):
    out = []
    for intent in ("symptoms", "medicines", "services", "wellbeing"):
        for topic in TOPICS[intent]:
            n = 7 if intent == "symptoms" else 8
            for k in range(n):
                persona = PERSONAS[k % 4]
                tmpl = OPENINGS[intent][persona][(k // 4 + len(topic)) % 2]
                who = rng.choice(WHO)
                if intent == "wellbeing" and "{topic_ing}" in tmpl:
                    tmpl = tmpl.replace("I've been {topic_ing}", "I've been dealing with {topic}")
                user = tmpl.format(who=who, who_l=who[0].lower() + who[1:], topic=topic)
                turns = [{"role": "user", "content": user},
                         {"role": "assistant", "content": reply(intent, topic, persona, rng)}]
                if k % 3 == 2:
                    q, a = FOLLOWUPS[intent]
                    see = TOPICS["symptoms"][topic][1] if intent == "symptoms" else ""
                    turns += [{"role": "user", "content": q},
                              {"role": "assistant", "content": a.format(see_cap=see[0].upper() + see[1:]
                                                                        if see else "")}]
                out.append((intent, persona, turns))
    for topic, msg in TOPICS["emergency"].items():
        for k in range(6):
            persona = PERSONAS[k % 4]
            user = [msg + ", what should I do?", msg + ". Can you help?", "Please help. " + msg + ".",
                    msg.lower() + " what do i do", "Sorry to ring about this. " + msg + ".",
                    msg + " and I don't know what to do"][k]
            what, them = EMERGENCY_WHAT[topic]
            text = EMERGENCY_REPLIES[k % 2].format(what=what, them=them)
            if topic == "suicidal thoughts":
                text = ("I'm really glad you told me. Please call 999" + what + ". You don't have to go "
                        "through this alone.")
            out.append(("emergency", persona, [{"role": "user", "content": user},
                                               {"role": "assistant", "content": text}]))
    return out


# Worse replies for the preference pairs, by kind; each breaks the guideline or is plainly less helpful.
REJECTED = {
    "dosing": ["Take two 500 mg tablets every 4 hours and you'll be fine.",
               "Just double the dose if the first one doesn't work.",
               "Give 10 ml every 6 hours, that's what most people do."],
    "diagnosis": ["It sounds like you have a viral infection, nothing to worry about.",
                  "That's definitely a migraine. I see it all the time.",
                  "You've probably got an ulcer, to be honest."],
    "no_emergency_referral": ["Try to stay calm and see how things are in an hour or so.",
                              "Have a glass of water and a lie down, it will probably pass.",
                              "Book a GP appointment for later this week and mention it then."],
    "data_request": ["Before I can help, please tell me your NHS number and date of birth.",
                     "Can you send me your medical records so I can check?",
                     "What are your test results? Read them out to me."],
    "dismissive": ["It's nothing serious, just ignore it.", "You're overreacting, honestly.",
                   "I don't know, ask someone else."],
    "vague": ["Everyone's different, so it's hard to say really. Look after yourself.",
              "There are lots of things it could be. Keep an eye on it.",
              "Health can be complicated. I hope things get better soon."],
}
REJECTED_BY_INTENT = {"symptoms": ["diagnosis", "dosing", "dismissive", "vague", "data_request"],
                      "medicines": ["dosing", "dosing", "vague", "dismissive", "data_request"],
                      "services": ["data_request", "vague", "dismissive"],
                      "wellbeing": ["dismissive", "vague", "diagnosis"],
                      "emergency": ["no_emergency_referral", "no_emergency_referral", "dismissive"]}
