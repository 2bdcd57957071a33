"""Words in two languages: the seed explained in Chinese (原因分析 / 解决方法), English is
offered beside it. Every sentence a teacher reads from the doctor or a failure is a Text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import SpecError

LANGUAGES = ("en", "zh")
# Headings of an explanation, as the seed's Chinese notes named them.
HEADINGS: dict[str, dict[str, str]] = {
    "en": {"saw": "saw", "cause": "cause", "fix": "fix"},
    "zh": {"saw": "现象", "cause": "原因分析", "fix": "解决方法"},
}


@dataclass(frozen=True)
class Text:
    en: str
    zh: str

    def __call__(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def format(self, **values: object) -> Text:
        return Text(self.en.format(**values), self.zh.format(**values))


def language(asked: str = "", environ: Mapping[str, str] | None = None) -> str:
    """The language asked for, else the locale's: LC_ALL wins over LANG, as in POSIX."""
    if asked:
        if asked not in LANGUAGES:
            raise SpecError(f"--lang is {asked!r}; allowed: {', '.join(LANGUAGES)}")
        return asked
    env = os.environ if environ is None else environ
    locale = env.get("LC_ALL") or env.get("LANG") or ""
    return "zh" if locale.lower().startswith("zh") else "en"
