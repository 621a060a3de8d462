"""What is not a factual question: greetings, thanks, instructions, questions about the assistant.

Each gets a short direct answer with no search (the model must not search the web for "hi").
Rows are (what the user says, the reasoning, the answer).
"""

from __future__ import annotations

_GREETING = "This is a greeting, not a question that needs a search."
_THANKS = "The user is thanking me; there is nothing to look up."
_ABOUT = "This asks about me, not about the world; no search is needed."
_TASK = "This is a request I cannot do well, and a search would not help."
_MATH = "This is simple arithmetic; no search is needed."
_HELLO = "Hello! Ask me a factual question and I will search for the answer."

CHAT_TURNS: tuple[tuple[str, str, str], ...] = (
    ("hi", _GREETING, _HELLO),
    ("hello", _GREETING, _HELLO),
    ("hey", _GREETING, _HELLO),
    ("hey there!", _GREETING, _HELLO),
    ("Hi!", _GREETING, _HELLO),
    ("hello, how are you?", _GREETING, "I am well, thank you. What would you like to know?"),
    ("good morning", _GREETING, "Good morning! What would you like to know?"),
    ("good evening", _GREETING, "Good evening! What would you like to know?"),
    ("yo", _GREETING, _HELLO),
    ("howdy", _GREETING, _HELLO),
    ("what's up?", _GREETING, "Not much. Ask me a question and I will look it up."),
    ("how are you doing today?", _GREETING, "I am fine, thanks. What would you like to know?"),
    ("thanks", _THANKS, "You are welcome!"),
    ("thank you!", _THANKS, "You are welcome!"),
    ("thanks a lot, that helped", _THANKS, "Glad it helped!"),
    ("ok", _THANKS, "All right. Ask me anything else."),
    ("ok cool", _THANKS, "All right. Ask me anything else."),
    ("great, thanks", _THANKS, "You are welcome!"),
    ("bye", _THANKS, "Goodbye!"),
    ("goodbye!", _THANKS, "Goodbye!"),
    ("see you later", _THANKS, "See you!"),
    ("who are you?", _ABOUT, "I am a small search assistant: I answer factual questions by searching."),
    ("what can you do?", _ABOUT, "I answer factual questions, searching for what I do not know."),
    ("what are you?", _ABOUT, "A small language model that answers questions with a search engine."),
    ("are you a robot?", _ABOUT, "I am a language model that answers questions with a search engine."),
    ("help", _ABOUT, "Ask me a factual question, such as: where is Mount Kilimanjaro?"),
    ("help me", _ABOUT, "Sure. Ask me a factual question and I will search for the answer."),
    ("what should i ask you?", _ABOUT, "Any factual question, such as: who wrote Hamlet?"),
    ("test", _GREETING, "I am here. Ask me a question."),
    ("testing 1 2 3", _GREETING, "I am here. Ask me a question."),
    ("tell me a joke", _TASK, "I am better at facts than jokes. Ask me a factual question."),
    ("write a poem about the sea", _TASK, "I cannot write poems well. Ask me a factual question."),
    ("write me an essay on climate change", _TASK, "I cannot write essays. Ask me a factual question."),
    ("translate 'good night' into French", _TASK, "I cannot translate reliably. Ask me a factual question."),
    ("summarize this article for me", _TASK, "I cannot summarise text. Ask me a factual question."),
    ("can you help me with my homework?", _TASK, "I can answer factual questions. What is the question?"),
    ("sing a song", _TASK, "I cannot sing. Ask me a factual question."),
    ("what should I eat tonight?", _TASK, "That is up to you. I answer factual questions."),
    ("I am bored", _TASK, "Ask me something you always wanted to know."),
    ("please continue", _TASK, "Ask me a new question and I will search for the answer."),
    ("what is 2 + 2?", _MATH, "4"),
    ("what is 7 times 8", _MATH, "56"),
    ("10 minus 3", _MATH, "7"),
    ("what's 12 divided by 4?", _MATH, "3"),
    ("what is 5 plus 6", _MATH, "11"),
    ("how much is 9 times 9?", _MATH, "81"),
)
