"""How a query is priced in the evaluation's cost figures (`eval.cost`): an API model's token
prices, or the self-hosted cost of the measured generation time. Read by `tasks/evaluate/ops.py`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_1m: float = Field(ge=0, description="USD per 1M input tokens")
    output_per_1m: float = Field(ge=0, description="USD per 1M output tokens")


# Published list prices in USD per 1M tokens, as remembered when this file was written: check them
# against the providers' current price pages before quoting any cost from this table.
DEFAULT_PRICES = {
    "gpt-4o": {"input_per_1m": 2.50, "output_per_1m": 10.00},
    "gpt-4o-mini": {"input_per_1m": 0.15, "output_per_1m": 0.60},
    "claude-3-5-sonnet": {"input_per_1m": 3.00, "output_per_1m": 15.00},
    "claude-3-5-haiku": {"input_per_1m": 0.80, "output_per_1m": 4.00},
}


class CostConfig(BaseModel):
    """How to price a query: an API model's token prices when `model_price` names one, else the
    self-hosted cost of the measured generation time at `gpu_hour_usd`."""

    model_config = ConfigDict(extra="forbid")
    model_price: str | None = Field(None, description="a price_table entry; None = self-hosted")
    price_table: dict[str, Price] = Field(
        default_factory=lambda: {k: Price(**v) for k, v in DEFAULT_PRICES.items()},
        description="USD per 1M input and output tokens, by model name",
    )
    gpu_hour_usd: float = Field(2.0, ge=0, description="USD per hour of the accelerator that serves the model")

    @model_validator(mode="after")
    def _known_price(self) -> "CostConfig":
        if self.model_price is not None and self.model_price not in self.price_table:
            raise ValueError(
                f"model_price {self.model_price!r} is not in price_table; "
                f"choose one of {', '.join(sorted(self.price_table))} or add it to price_table"
            )
        return self
