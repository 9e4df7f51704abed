"""What the bundled demo model knows: the topics of sample_docs/ and questions it was trained to answer from them.

The demo model is 4 MB and was trained only on these documents; the app's welcome offers these questions so a
first question shows the model retrieving, judging and citing rather than guessing.
"""

from __future__ import annotations

DEMO_TOPICS: tuple[str, ...] = (
    "llamas, alpacas and their wild relatives",
    "Andean textile fibres (a PDF)",
    "a bicycle maintenance handbook (a PDF)",
    "a sourdough baking log",
    "balcony garden watering",
    "a home network",
    "a reading log",
)

DEMO_QUESTIONS: tuple[str, ...] = (
    "Can you tell me the difference between llamas and alpacas?",
    "How fine is vicuna fibre?",
    "What is the ABC Quick Check?",
    "When does the balcony drip irrigation run in summer?",
    "At what ratio do I feed the starter before baking?",
    "Leave odd one out: twitter, instagram, whatsapp.",
)
