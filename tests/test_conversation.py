"""Follow-up resolution: pronouns, ellipsis, topic changes, Russian, chains and live sessions."""

from types import SimpleNamespace

from chatbot.qa.conversation import Conversation, is_followup, resolve_followup, subject_terms


def test_pronoun_followup_gets_the_earlier_subject():
    query = resolve_followup("How many GPUs does it house?", ["What is xAI's data center in Memphis called?"])
    assert query.startswith("How many GPUs does it house?")
    assert "Memphis" in query and "xAI's" in query


def test_ellipsis_followup_gets_the_earlier_subject():
    history = ["How much funding did Musk aim to secure for xAI in April?"]
    for question in ("At what valuation?", "And when?", "What about Oracle?", "What else?", "Who is the founder?"):
        assert is_followup(question), question
        assert "xAI" in resolve_followup(question, history)


def test_topic_change_is_not_polluted():
    history = ["What is xAI's data center in Memphis called?"]
    for question in ("Who is the CEO of OpenAI?", "What is the capital of France?", "What is inflation?",
                     "Which OpenAI product maintains its dominant market position?"):
        assert resolve_followup(question, history) == question


def test_russian_followup():
    query = resolve_followup("Какой чат-бот он поддерживает?", ["Как называется центр обработки данных XAI в Мемфисе?"])
    assert "XAI" in query and "Мемфисе" in query
    assert resolve_followup("А сколько ещё?", ["Сколько денег собрал стартап Маска?"]).endswith("(Маска денег собрал стартап)")
    assert resolve_followup("Кто основал OpenAI?", ["Сколько денег собрал стартап Маска?"]) == "Кто основал OpenAI?"


def test_chain_of_followups_keeps_the_first_subject():
    history = ["What is xAI's data center in Memphis called?", "How many GPUs does it house?"]
    assert "Memphis" in resolve_followup("Which chatbot does it power?", history)


def test_bot_answer_is_used_in_a_live_session():
    query = resolve_followup("Who is its CEO?", ["Which AI company did Musk co-found but later leave?"], ["OpenAI"])
    assert query.startswith("Who is its CEO? (OpenAI ")


def test_no_history_or_nothing_to_add_returns_the_question():
    assert resolve_followup("  How old is she? ", []) == "How old is she?"
    assert resolve_followup("And when?", ["When?"]) == "And when?"
    assert subject_terms("Who is the CEO of X?") == ["CEO", "X"]


def test_conversation_records_turns_and_passes_them_on():
    seen = []

    class Bot:
        def ask(self, question, history, k, answers, explain=False):
            seen.append((question, list(history), list(answers), k))
            return SimpleNamespace(text="Colossus" if not history else None)

    conv = Conversation(max_turns=2)
    conv.ask(Bot(), "What is xAI's data center in Memphis called?", k=3)
    assert "Colossus" in conv.resolve("How many GPUs does it house?")
    conv.ask(Bot(), "How many GPUs does it house?")
    conv.ask(Bot(), "Which chatbot does it power?")
    assert seen[1] == ("How many GPUs does it house?", ["What is xAI's data center in Memphis called?"], ["Colossus"], 5)
    assert conv.questions == ["How many GPUs does it house?", "Which chatbot does it power?"]
    assert conv.answers == [None, None]
    conv.reset()
    assert conv.questions == [] and conv.answers == []


def test_acronyms_are_names_not_pronouns():
    history = ["How many days of paid holiday do employees get?"]
    for question in ("Who runs the IT helpdesk?", "Is the US part of the AI Infrastructure Partnership?",
                     "Who is the CEO of X?", "What does AI stand for?"):
        assert not is_followup(question), question
        assert resolve_followup(question, history) == question
    assert "IT" in subject_terms("Who runs the IT helpdesk?")
    # A question typed in capitals is read in lower case: its "IT" is the pronoun.
    assert is_followup("HOW MANY GPUS DOES IT HOUSE?")


def test_possessive_after_a_noun_of_the_same_question_stands_alone():
    history = ["What is xAI's data center in Memphis called?"]
    for question in ("Which company moved its headquarters to Texas?",
                     "What fuel-burning machinery drew complaints about how the chatbot maker keeps its servers running?"):
        assert resolve_followup(question, history) == question
    for question in ("Who is its CEO?", "What is its valuation?", "Which firm did it acquire?"):
        assert resolve_followup(question, history) != question, question


def test_named_answer_is_what_it_refers_to():
    """The bot said "Nvidia": the follow-up is searched with Nvidia and the earlier names, not the earlier
    question's generic words, which would pull in other passages."""
    query = resolve_followup("What will it provide to the initiative?",
                             ["Which company is the world's leading GPU manufacturer?"], ["Nvidia"])
    assert query == "What will it provide to the initiative? (Nvidia GPU)"


def test_amount_answer_is_not_a_subject():
    query = resolve_followup("А сколько ещё он хочет привлечь?", ["Сколько денег уже собрал стартап Маска XAI?"],
                             ["12 миллиардов долларов"])
    assert "12" not in query and "XAI" in query and "Маска" in query


def test_nothing_to_refer_to_asks_back():
    from chatbot.qa.conversation import clarification

    message = clarification("How many GPUs does it house?", [])
    assert message.startswith("What does “it” refer to?")
    assert clarification("And when?", []).startswith("What are you asking about?")
    assert clarification("And when?", ["When?"]).startswith("What are you asking about?")
    for question in ("What is inflation?", "What about Oracle?", "Who runs the IT helpdesk?",
                     "Which company moved its headquarters to Texas?"):
        assert clarification(question, []) is None, question
    assert clarification("How many GPUs does it house?", ["What is xAI's data center in Memphis called?"]) is None


def test_that_may_point_at_an_amount():
    query = resolve_followup("How much of that is earmarked for immediate action?",
                             ["Which AI infrastructure project did Donald Trump announce?", "How much does it plan to invest?"],
                             ["Stargate", "$500 billion"])
    assert query.startswith("How much of that is earmarked for immediate action? ($500 billion Stargate")
