"""[checks]: deliberate exceptions to the wrapper's refusals (swimlatent_wrap.sdscripts.checks)."""

from swimlatent_wrap.recipe.schema import BOOL, Field, Table

TABLE = Table(
    name="checks",
    help="Accept, deliberately, a setting `swimlatent validate` refuses because it would train without effect.",
    fields=[
        Field("allow_rounded_updates", BOOL, False,
              "accept a learning rate below half the rounding step of a 2^-9 weight in the dtype full_bf16/full_fp16 "
              "stores weights in (each step then rounds away for most weights, so training leaves the model where it "
              "started), e.g. because your optimizer rounds stochastically"),
    ],
)
