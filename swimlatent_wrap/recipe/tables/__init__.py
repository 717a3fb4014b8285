"""The wrapper's own recipe tables, one module each. sd-scripts' tables ([args], [dataset_config])
are declared by the option manifest instead (swimlatent_wrap.sdscripts)."""

from swimlatent_wrap.recipe.schema import Table
from swimlatent_wrap.recipe.tables import captions, checks, dataset, launch, merge, modelspec, sample, sweep

WRAPPER_TABLES: dict[str, Table] = {
    module.TABLE.name: module.TABLE for module in (dataset, captions, launch, sample, sweep, merge, modelspec, checks)
}
