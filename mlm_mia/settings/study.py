"""The settings of one study (score_MIA.py's flags), typed, frozen and checked once."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InputError
from .choices import BACKENDS, DTYPES, LIRA_STATISTICS, PLL_METRICS, REDUCTIONS, dtype_name
from .flags import check_fields, non_negative_int, positive_int, setting, shadow_indices

# the name-condition probe's inputs: flag -> field
PROBE_FILES = {"--diagnoses": "diagnoses", "--diagnosis-titles": "diagnosis_titles",
               "--patient-names": "patient_names"}
# where a run writes and how it reuses earlier work: no part of what its results are
NOT_IDENTITY = frozenset({"out_dir", "overwrite", "cache_dir", "no_cache", "shadows_ready", "replace_shadows",
                          "no_plot", "show_exposed"})


@dataclass(frozen=True)
class StudySettings:
    """What score_MIA.py does: the models, the sets, the attacks' and statistics'
    settings, the outputs. Each field is the flag of the same name (``_`` for ``-``);
    the values pass the flags' checks however they are given."""

    target: Path | None = None
    reference: tuple[Path, ...] = ()
    demo: bool = False
    canaries: int = setting(shared="--canaries")
    canary_patients: int = setting(shared="--canary-patients")
    data_dir: Path = Path("data")
    out_dir: Path = Path("results")
    # scoring
    pll: str = setting("original", choices=PLL_METRICS)
    reduction: str = setting("mean", choices=REDUCTIONS)
    backend: str = setting("engine", choices=BACKENDS)
    device: str = "auto"
    dtype: str = setting("auto", dtype_name, DTYPES)
    batch_tokens: int | None = setting(None, positive_int)
    compile: bool = False
    cache_dir: Path = Path("data") / "cache"
    no_cache: bool = False
    # shadow models
    shadow_models: int = setting(0, non_negative_int)
    shadow_recipe: Path | None = None
    shadow_init: str = "scratch"
    shadow_index: tuple[int, ...] | None = setting(None, shadow_indices)
    shadows_ready: bool = False
    shadow_dir: Path | None = None
    shadow_seed: int = setting(0, non_negative_int)
    replace_shadows: bool = False
    # attacks and statistics
    rmia_offline_a: float = setting(shared="--rmia-offline-a")
    min_k_fraction: float = setting(shared="--min-k-fraction")
    lira_statistic: str = setting("pll", choices=LIRA_STATISTICS)
    neighbours: int = setting(0, non_negative_int)
    neighbour_model: Path | None = None
    # the name-condition probe
    name_probe: bool = False
    diagnoses: Path | None = None
    diagnosis_titles: Path | None = None
    patient_names: Path | None = None
    bootstrap: int = setting(shared="--bootstrap")
    seed: int = setting(shared="--seed")
    exposure_alternatives: int = setting(shared="--exposure-alternatives")
    audit_delta: float = setting(shared="--audit-delta")
    # outputs
    no_plot: bool = False
    overwrite: bool = False
    show_exposed: int = setting(0, non_negative_int)

    def __post_init__(self) -> None:
        for name in ("data_dir", "out_dir", "cache_dir", "target", "shadow_recipe", "shadow_dir", "neighbour_model",
                     *PROBE_FILES.values()):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        references = [self.reference] if isinstance(self.reference, (str, Path)) else self.reference or ()
        object.__setattr__(self, "reference", tuple(Path(p) for p in references))  # one folder, or several
        check_fields(self)
        self._check_together()

    def _check_together(self) -> None:
        """What no flag can check alone."""
        for flag, value in (("--canaries", self.canaries), ("--canary-patients", self.canary_patients)):
            if value and not self.demo:
                raise InputError(f"{flag} plants canaries in the demo target's training data and goes "
                                 "with --demo; for your own model, plant them with prepare_data_MIA.py "
                                 f"{flag} M before training it")
        if self.show_exposed and self.no_plot:
            raise InputError("--show-exposed lists sentences in report.html, which --no-plot does not "
                             "write; drop one of them")
        if self.compile and self.backend != "engine":
            raise InputError("--compile applies to --backend engine only")
        if self.shadow_models == 1:
            raise InputError("--shadow-models must be 0 (none) or at least 2 (an IN and an OUT model "
                             "for every sentence)")
        if self.shadow_index is not None and not self.shadow_models:
            raise InputError("--shadow-index picks among --shadow-models K; give K")
        if self.shadow_index is not None and max(self.shadow_index) >= self.shadow_models:
            raise InputError(f"--shadow-index {max(self.shadow_index)}: there are only --shadow-models "
                             f"{self.shadow_models} (indices 0 to {self.shadow_models - 1})")
        if self.neighbour_model and not self.neighbours:
            raise InputError("--neighbour-model makes the neighbours of --neighbours N; give N > 0")
        self._check_name_probe()
        if self.target is None and not self.demo:
            raise InputError("give --target MODEL_DIR (and, for the likelihood-ratio attacks, "
                             "--reference MODEL_DIR), or --demo")

    def _check_name_probe(self) -> None:
        given = [flag for flag, name in PROBE_FILES.items() if getattr(self, name) is not None]
        if given and not self.name_probe:
            raise InputError(f"{given[0]} is an input of --name-probe; add --name-probe or drop it")
        if self.name_probe and self.demo and given:
            raise InputError(f"{given[0]}: --demo probes with the synthetic corpus's own files; "
                             "drop it, or run without --demo")
        if self.name_probe and not self.demo and len(given) < len(PROBE_FILES):
            missing = [flag for flag in PROBE_FILES if flag not in given]
            raise InputError(f"--name-probe needs {', '.join(missing)} (DIAGNOSES_ICD.csv.gz, "
                             "D_ICD_DIAGNOSES.csv.gz, and a SUBJECT_ID,NAME file or the 1b notes)")

    def config(self) -> dict:
        """The settings as a ``--config`` YAML file holds them: score_MIA.py --config reads
        back the same settings (a torchrun rank's shadow job is started so)."""
        values = {}
        for name, value in dataclasses.asdict(self).items():
            if name == "shadow_index" and value is not None:
                value = ",".join(map(str, value))
            elif isinstance(value, (tuple, list)):
                value = [str(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            values[name] = value
        return values

    def replace(self, **changes) -> StudySettings:
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict:
        """The settings that make a run what it is (not where it writes, nor how it reuses
        cached work): two runs with the same identity give the same results."""
        values = {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "reference" else v)
                  for k, v in dataclasses.asdict(self).items() if k not in NOT_IDENTITY}
        return json.loads(json.dumps(values))  # as settings.json holds it

    @property
    def shadows_folder(self) -> Path:
        return self.shadow_dir or self.data_dir / "shadow_models"
