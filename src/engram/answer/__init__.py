"""Answer stage: clusters -> cited prompt -> reader (extract | generate) -> Answer.

Modules: ``pipeline`` (the stage), ``readers`` (extract / generate / auto), ``extract`` (span
scoring), ``evidence`` (sentences), ``spans`` (candidates), ``citations`` and ``grounding``
(checks on generated text), ``result`` (``Answer``, ``Evidence``).
"""

from engram.answer.pipeline import AnswerSettings, answer_from_hits
from engram.answer.readers import READERS, ExtractReader, GenerateReader, Reader, ReadSettings
from engram.answer.result import Answer, Evidence

__all__ = [
    "READERS",
    "Answer",
    "AnswerSettings",
    "Evidence",
    "ExtractReader",
    "GenerateReader",
    "ReadSettings",
    "Reader",
    "answer_from_hits",
]
