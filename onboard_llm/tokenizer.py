"""Tokenizers of the supported checkpoints and their chat templates.

GGUF files carry a byte-level BPE (vocab + merges) that is rebuilt with the `tokenizers` library;
Hugging Face folders carry tokenizer.json; llama2.c's tok512.bin is a SentencePiece-style vocabulary
with merge scores, encoded the way llama2.c's run.c does. The chat template (Jinja, from the GGUF
metadata or tokenizer_config.json) is rendered in a sandbox as transformers does.
"""
from __future__ import annotations

import functools
import json
import struct
from pathlib import Path
from typing import Sequence

from perception.model_files import ModelFileError

CONTROL_TOKEN_TYPE = 3
"""GGUF token_type of control tokens (<|im_start|> …): matched whole in text, never split."""


@functools.cache
def _template_environment():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)


class Tokenizer:
    """Text ↔ token ids, special ids, and the model's chat format."""

    bos_id: int | None
    eos_id: int
    stop_ids: frozenset[int]
    """Tokens that end an answer (EOS and the chat format's end-of-turn token)."""
    chat_template: str | None
    """Jinja chat template; None for models without one (plain text prompts)."""

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def token_text(self, token_id: int) -> str:
        raise NotImplementedError

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The prompt text that asks the model for the assistant's next turn."""
        if self.chat_template is None:
            return "\n".join(message["content"] for message in messages)
        template = _template_environment().from_string(self.chat_template)
        return template.render(messages=messages, add_generation_prompt=True,
                               bos_token=self.token_text(self.bos_id) if self.bos_id is not None else "",
                               eos_token=self.token_text(self.eos_id))

    @staticmethod
    def from_gguf_fields(fields) -> "Tokenizer":
        """From a gguf.GGUFReader's fields (tokenizer.ggml.model 'gpt2': byte-level BPE)."""
        model = fields["tokenizer.ggml.model"].contents()
        if model != "gpt2":
            raise ModelFileError(f"tokenizer model {model!r} in the GGUF metadata is not supported (byte-level BPE, 'gpt2', is)")
        tokens = fields["tokenizer.ggml.tokens"].contents()
        merges = [tuple(merge.split(" ", 1)) for merge in
                  (fields["tokenizer.ggml.merges"].contents() if "tokenizer.ggml.merges" in fields else [])]
        types = fields["tokenizer.ggml.token_type"].contents()
        special = [token for token, kind in zip(tokens, types) if kind == CONTROL_TOKEN_TYPE]

        def field(name):
            return fields[name].contents() if name in fields else None

        return ByteLevelBpeTokenizer.build(tokens, merges, special, bos_id=field("tokenizer.ggml.bos_token_id"),
                                           eos_id=field("tokenizer.ggml.eos_token_id"),
                                           chat_template=field("tokenizer.chat_template"))

    @staticmethod
    def from_huggingface(folder: Path) -> "Tokenizer":
        return ByteLevelBpeTokenizer.from_folder(folder)

    @staticmethod
    def from_llama2c(path: Path) -> "Tokenizer":
        return Llama2cTokenizer(path)


class ByteLevelBpeTokenizer(Tokenizer):
    def __init__(self, backend, bos_id: int | None, eos_id: int, chat_template: str | None) -> None:
        self.backend = backend
        """The tokenizers.Tokenizer."""
        self.bos_id, self.eos_id, self.chat_template = bos_id, eos_id, chat_template
        end_of_turn = backend.token_to_id("<|im_end|>")
        self.stop_ids = frozenset({eos_id} | ({end_of_turn} if end_of_turn is not None else set()))

    @classmethod
    def build(cls, tokens: list[str], merges: list[tuple[str, str]], special: list[str], bos_id: int | None,
              eos_id: int, chat_template: str | None) -> "ByteLevelBpeTokenizer":
        from tokenizers import AddedToken, Tokenizer as Backend, decoders, models, pre_tokenizers

        backend = Backend(models.BPE(vocab={token: index for index, token in enumerate(tokens)}, merges=merges))
        # SmolLM2's pre-tokenizer (llama.cpp's "smollm"): digits one by one, then GPT-2's byte-level split.
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        backend.decoder = decoders.ByteLevel()
        backend.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special])
        return cls(backend, bos_id, eos_id, chat_template)

    @classmethod
    def from_folder(cls, folder: Path) -> "ByteLevelBpeTokenizer":
        from tokenizers import Tokenizer as Backend

        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ModelFileError(f"{path}: tokenizer file not found (the model folder needs tokenizer.json)")
        backend = Backend.from_file(str(path))
        settings_path = folder / "tokenizer_config.json"
        settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}

        def token_id(key):
            token = settings.get(key)
            token = token.get("content") if isinstance(token, dict) else token
            return backend.token_to_id(token) if token else None

        eos_id = token_id("eos_token")
        if eos_id is None:
            raise ModelFileError(f"{settings_path}: no eos_token; the model's end of answer is unknown")
        return cls(backend, token_id("bos_token"), eos_id, settings.get("chat_template"))

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self.backend.id_to_token(token_id)


class Llama2cTokenizer(Tokenizer):
    """llama2.c's tokenizer file: int32 max_len, then per token float32 score, int32 length, bytes.
    Ids 0, 1, 2 are <unk>, BOS, EOS; 3..258 are the bytes <0x00>..<0xFF>."""

    BYTE_OFFSET = 3

    def __init__(self, path: Path) -> None:
        if not Path(path).is_file():
            raise ModelFileError(f"{path}: llama2.c tokenizer not found (tok512.bin belongs beside the model)")
        data = Path(path).read_bytes()
        self.pieces: list[bytes] = []
        self.scores: list[float] = []
        try:
            offset = 4
            while offset < len(data):
                score, length = struct.unpack_from("<fi", data, offset)
                self.pieces.append(data[offset + 8:offset + 8 + length])
                self.scores.append(score)
                offset += 8 + length
        except struct.error:
            raise ModelFileError(f"{path}: truncated llama2.c tokenizer; copy it again") from None
        self.ids = {piece: index for index, piece in enumerate(self.pieces)}
        self.bos_id, self.eos_id, self.chat_template = 1, 2, None
        self.stop_ids = frozenset({self.eos_id})

    def encode(self, text: str) -> list[int]:
        """As run.c: a dummy space prefix, one id per UTF-8 character (bytes when unknown), then the
        best-scoring merges until none applies."""
        ids = []
        for character in (" " + text if text else ""):
            encoded = character.encode()
            if encoded in self.ids:
                ids.append(self.ids[encoded])
            else:
                ids.extend(byte + self.BYTE_OFFSET for byte in encoded)
        while True:
            best = None
            for index in range(len(ids) - 1):
                merged = self.ids.get(self.pieces[ids[index]] + self.pieces[ids[index + 1]])
                if merged is not None and (best is None or self.scores[merged] > self.scores[best[1]]):
                    best = (index, merged)
            if best is None:
                return ids
            ids[best[0]:best[0] + 2] = [best[1]]

    def decode(self, ids: Sequence[int]) -> str:
        text = b"".join(self._bytes(token) for token in ids if token > self.eos_id)
        return text.decode(errors="replace").lstrip(" ")

    def _bytes(self, token: int) -> bytes:
        if self.BYTE_OFFSET <= token < self.BYTE_OFFSET + 256:
            return bytes([token - self.BYTE_OFFSET])
        return self.pieces[token]

    def token_text(self, token_id: int) -> str:
        return self.pieces[token_id].decode(errors="replace")
