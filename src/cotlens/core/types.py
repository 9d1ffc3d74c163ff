"""The allowed values of every mode, method and position set, one ``Literal`` each.

The config schema (``workflow/schemas/config.schema.yaml``), the Parquet schemas
(``cotlens.io.schemas``), the method modules and the tests all refer to these;
``tests/unit/test_layout.py`` checks that the config schema's enums are exactly these
tuples. Pure Python: nothing is imported.
"""

from __future__ import annotations

from typing import Literal, get_args

# Study 1 (circuits)
Position = Literal["last_prompt", "step_end", "answer"]  # extracted positions of a CoT sample
PairContext = Literal["question", "fewshot"]  # what precedes the CoT prefix of a patching pair
ScreenMethod = Literal["eap-ig", "atp"]  # the attribution screen before exact patching
PathwaySet = Literal["question", "cot", "context"]  # context: question + CoT, the last position excluded
PatchMethod = Literal["exact", "attribution"]
CircuitScope = Literal["subtask", "pooled"]
# Study 2 (neurons)
AblationMode = Literal["noise", "zero", "mean"]
Projection = Literal["raw", "normed"]  # value vectors to the vocabulary without / with the final norm
# Study 3 (digits)
DigitSetting = Literal["conditioned", "unconditioned", "direct"]
DigitEstimator = Literal["softmax", "mc_dropout"]
# Study 4 (experts)
SwitchMode = Literal["off", "on"]
FtriTokens = Literal["all", "prompt", "generated"]
FtriClasses = Literal["response", "prompt_set"]

POSITIONS: tuple[Position, ...] = get_args(Position)
PAIR_CONTEXTS: tuple[PairContext, ...] = get_args(PairContext)
SUBTASKS = ("decision", "copy", "induction")  # Study 1's pair subtasks (Dutta et al.), in figure order
SCREENS: tuple[ScreenMethod, ...] = get_args(ScreenMethod)
PATHWAY_SETS: tuple[PathwaySet, ...] = get_args(PathwaySet)
CIRCUIT_SCOPES: tuple[CircuitScope, ...] = get_args(CircuitScope)
ABLATIONS: tuple[AblationMode, ...] = get_args(AblationMode)
PROJECTIONS: tuple[Projection, ...] = get_args(Projection)
DIGIT_SETTINGS: tuple[DigitSetting, ...] = get_args(DigitSetting)
DIGIT_ESTIMATORS: tuple[DigitEstimator, ...] = get_args(DigitEstimator)
SWITCH_MODES: tuple[SwitchMode, ...] = get_args(SwitchMode)
FTRI_TOKENS: tuple[FtriTokens, ...] = get_args(FtriTokens)
FTRI_CLASSES: tuple[FtriClasses, ...] = get_args(FtriClasses)
