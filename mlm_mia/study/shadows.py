"""The shadow models of a study: planned from the settings, trained where missing (here,
or each torchrun rank its share in a child process), held locked while the run uses them,
and described for settings.json."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InputError
from ..common.stopwatch import Stopwatch
from ..engine import distributed
from ..engine.scoring import ModelDir
from ..settings.study import StudySettings
from ..training import recipe as recipe_module, shadow
from ..training.recipe import Recipe

log = logging.getLogger(__name__)

SHADOW_RECIPE = recipe_module.ROOT / "configs" / "shadow_recipe.yaml"


def shadow_recipe(settings: StudySettings) -> Recipe:
    """The recipe the shadow models are trained with."""
    if settings.shadow_recipe:
        return recipe_module.load(settings.shadow_recipe)
    return recipe_module.load(recipe_module.DEMO_RECIPE if settings.demo else SHADOW_RECIPE, "recipe")


@dataclass
class ShadowPlan:
    """The K shadow models, and those this run (this rank) is to train."""

    planned: list[shadow.Shadow]
    missing: list[shadow.Shadow]
    children: bool  # under torchrun, each rank's child trains (and locks) its share
    recipe: Recipe


def plan_shadows(settings: StudySettings, ranks: distributed.Ranks, target: ModelDir,
                 holds: contextlib.ExitStack) -> ShadowPlan:
    """The K shadow models, checked against their records, and the missing ones (never
    with ``--shadows-ready``, which names them instead). Each is held locked in ``holds``
    while the run trains or uses it."""
    recipe = shadow_recipe(settings)
    planned = shadow.plan(settings.data_dir, settings.shadow_models, target.path,
                          shadow.architecture_key(target.path), recipe, settings.shadow_init,
                          settings.shadows_folder, settings.shadow_seed)
    wanted = [s for s in planned if settings.shadow_index is None or s.index in settings.shadow_index]
    # under torchrun each rank's child trains (and locks) its share; the rank locks them after
    children = ranks.world > 1 and settings.shadow_index is None
    missing = [s for s in wanted if not s.done] if children else shadow.claim(
        wanted, holds, train=not settings.shadows_ready, replace=settings.replace_shadows)
    if missing and settings.shadows_ready:
        raise InputError(f"shadow models {[s.index for s in missing]} of {settings.shadow_models} are not "
                         f"trained (or were trained for other data or settings); train them with "
                         f"--shadow-index {','.join(str(s.index) for s in missing)}, or drop --shadows-ready")
    return ShadowPlan(planned, missing, children, recipe)


def train_shadows(plan: ShadowPlan, settings: StudySettings, ranks: distributed.Ranks, target: ModelDir,
                  watch: Stopwatch, holds: contextlib.ExitStack) -> list[shadow.Shadow]:
    """The planned shadow models, the missing ones trained: here, one after the other;
    under torchrun, each rank its share (models r, r + N, ...) in a process of its own."""
    with watch.stage("shadow training"):
        if plan.children:
            mine = [s.index for s in plan.missing if s.index % ranks.world == ranks.rank]
            if mine:  # the settings, not the command line: run_study may have been called from Python
                import yaml

                with tempfile.TemporaryDirectory() as folder:
                    config = Path(folder) / "settings.yaml"
                    config.write_text(yaml.safe_dump(settings.config()), encoding="utf-8")
                    shadow.train_in_child(["--config", str(config)], mine, ranks.local_rank)
            distributed.barrier(ranks)
            shadow.claim(plan.planned, holds, train=False, replace=False)
        else:
            for planned_shadow in plan.missing:
                shadow.train(planned_shadow, settings.shadow_init, target.path, target.tokenizer, plan.recipe,
                             settings.device)
    return plan.planned


def described(shadows: list[shadow.Shadow], settings: StudySettings, target: Path) -> dict | None:
    """The shadow models' recipe and what each saw, and, plainly, whether they differ from
    the target."""
    if not shadows:
        return None
    differs = shadow.differences(shadows[0].folder, target)
    if differs:
        log.warning("WARNING: the shadow models are not the target's architecture (%s): LiRA's IN and "
                    "OUT statistics then describe another model than the target", differs)
    return {"n": len(shadows), "recipe": shadows[0].record["recipe"], "init": settings.shadow_init,
            "init_kind": shadows[0].record["init"], "seed": settings.shadow_seed,
            "differs_from_target": differs or None, "patients_seen": [sorted(s.patients) for s in shadows]}
