"""Study 3 (Gambardella et al., ACL 2024): the claims its figures test (``cotlens.core.verdicts.claims``)."""

from __future__ import annotations

from cotlens.core.verdicts import Claim, claims

CLAIMS = claims(
    Claim(
        "digits",
        "digit_confidence",
        "the first digit of a product is more confident than the last",
        "first confident, last 0.13 (Llama-2-13B, 5x5)",
        "P(correct first digit) - P(correct last digit), no correct digit given, at the largest cells",
        None,
        0.25,
        "the paper gives the last digit (0.13) but no first-digit number; declared: 0.25 on the probability scale",
    ),
    Claim(
        "digits",
        "digit_conditioning",
        "the correct higher digits raise last-digit confidence",
        "0.13 -> 0.43 (Llama-2-13B, 5x5); 0.22 -> 0.55 (Mistral-7B)",
        "P(correct last digit) after the correct higher digits minus after the model's own, at the "
        "largest cells, paired by problem",
        0.30,
        0.15,
        "half the paper's +0.30 (Llama-2-13B)",
    ),
)
