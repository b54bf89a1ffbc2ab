"""Models in the catalog file: a model's versions, its limits, and the deployments that serve it.

A deployment names an operator integration (``libs.config.schemas.Integration``): the catalog
says which servers serve a model and in what shares, never where they are nor how to sign in.
An offer refers to a model as ``name`` (its default version when submitted) or ``name@version``
(pinned); its requests are checked against that version's context window and routed to its
deployments (``libs.contracts.models.Route``).
"""

from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from libs.catalog.numbers import INT32_MAX, JSON_INTEGER
from libs.contracts import HandlerId
from libs.contracts.models import Deployment, Route

ModelName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
"""A model's name or version: never an ``@`` nor a ``/``."""
ModelRef = Annotated[
    str,
    Field(
        max_length=201,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*(@[A-Za-z0-9][A-Za-z0-9._:-]*)?$",
    ),
]
"""What an offer's ``model`` says: ``name``, or ``name@version`` to pin one."""
Modality = Literal["text", "image", "audio"]
Tokenizer = Literal["cl100k_base", "o200k_base", "p50k_base", "r50k_base"]
"""The tiktoken encodings a model may count its tokens with (``libs.catalog.tokens``)."""
Tokens = Annotated[int, Field(ge=1, le=INT32_MAX), JSON_INTEGER]


def split_ref(ref: str) -> tuple[str, str | None]:
    """``name@version`` as ``(name, version)``; a bare name as ``(name, None)``."""
    name, _, version = ref.partition("@")
    return name, version or None


class FallbackSpec(BaseModel):
    """A model an offer's requests may be served by when every deployment of its own model
    failed without an answer, and what that costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelRef
    percent: Annotated[int, Field(ge=1, le=100), JSON_INTEGER] = 100
    """What a request served by it pays, as a percentage of what it would pay (at its tier):
    never more than the model it asked for."""


def _text_only() -> list[Modality]:
    return ["text"]


class ModelSpec(BaseModel):
    """One version of a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ModelName
    version: ModelName
    description: Annotated[str, Field(max_length=2000, pattern="^[^\\u0000]*$")] = ""
    handler: HandlerId
    """The provider kind: the handler that calls it (``openai.chat``)."""
    provider_model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """The name the provider knows it by; the model's ``name`` when unset."""
    context_window: Tokens
    """The most tokens a call may hold: prompt, conversation and output together."""
    max_output_tokens: Tokens
    input_modalities: list[Modality] = Field(default_factory=_text_only, min_length=1)
    output_modalities: list[Modality] = Field(default_factory=_text_only, min_length=1)
    tokenizer: Tokenizer | None = None
    """How its prompts are counted; unset: a conservative estimate (``libs.catalog.tokens``)."""
    deployments: list[Deployment] = Field(default_factory=list, max_length=50)
    """The servers that serve it, each an operator integration; none: the handler's params
    say where it is, as for any offer."""
    max_attempts: Annotated[int, Field(ge=1, le=50), JSON_INTEGER] = 4
    cooldown_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    idempotent: StrictBool = False
    default: StrictBool = False
    """The version offers that pin none are routed to: one per name."""
    enabled: StrictBool = True

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @field_validator("input_modalities", "output_modalities")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a modality is listed twice")
        return value

    @field_validator("deployments")
    @classmethod
    def _one_deployment_per_integration(cls, value: list[Deployment]) -> list[Deployment]:
        names = [d.integration for d in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"integration {twice[0]!r} is listed twice among the deployments")
        return value

    @model_validator(mode="after")
    def _output_fits(self) -> Self:
        if self.max_output_tokens > self.context_window:
            raise ValueError(
                f"max_output_tokens ({self.max_output_tokens}) exceeds the context window "
                f"({self.context_window})"
            )
        return self

    def route(self) -> Route | None:
        """Where its jobs run: None without deployments."""
        if not self.deployments:
            return None
        return Route(
            model=self.name,
            version=self.version,
            provider_model=self.provider_model or self.name,
            deployments=list(self.deployments),
            max_attempts=self.max_attempts,
            cooldown_s=self.cooldown_s,
            idempotent=self.idempotent,
        )


def check_models(models: list[ModelSpec], handlers: set[str]) -> None:
    """What holds across a catalog's models: each version once, at most one default per name,
    known handlers, and a default for every name whose enabled versions are all unpinned."""
    seen: set[str] = set()
    defaults: dict[str, str] = {}
    for model in models:
        if model.ref in seen:
            raise ValueError(f"model {model.ref!r} is defined twice")
        seen.add(model.ref)
        if model.handler not in handlers:
            raise ValueError(
                f"model {model.ref} names handler {model.handler!r}, "
                "which the catalog does not define"
            )
        if model.default:
            if model.name in defaults:
                raise ValueError(
                    f"model {model.name!r} has two default versions: "
                    f"{defaults[model.name]!r} and {model.version!r}"
                )
            if not model.enabled:
                raise ValueError(f"model {model.ref}: a disabled version cannot be the default")
            defaults[model.name] = model.version


class _OfferOfModel(Protocol):
    @property
    def service(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def handler(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def model(self) -> str | None: ...
    @property
    def fallbacks(self) -> list[FallbackSpec]: ...


def check_offer_models(offers: Sequence[_OfferOfModel], models: list[ModelSpec]) -> None:
    """What holds between a catalog's offers and its models: an enabled offer's model and
    fallbacks name enabled versions called by the offer's handler; fallbacks need a model, are
    other models than it, and are listed once each."""
    for offer in offers:
        name = f"{offer.service}/{offer.action}"
        fallbacks = [split_ref(f.model)[0] for f in offer.fallbacks]
        if fallbacks and offer.model is None:
            raise ValueError(f"offer {name} has fallbacks but no model")
        if len(set(fallbacks)) != len(fallbacks):
            raise ValueError(f"offer {name} lists a fallback model twice")
        if offer.model is None or not offer.enabled:
            continue
        model = _called_by_its_handler(name, offer, offer.model, models, "its model")
        for fallback in offer.fallbacks:
            other = _called_by_its_handler(name, offer, fallback.model, models, "its fallback")
            if other.name == model.name:
                raise ValueError(f"offer {name}: {other.ref} is its own model, not a fallback")


def _called_by_its_handler(
    name: str, offer: _OfferOfModel, ref: str, models: list[ModelSpec], role: str
) -> ModelSpec:
    """The enabled model version ``ref`` names, which must be called by the offer's handler."""
    try:
        model = resolve_ref(ref, models)
    except ValueError as exc:
        raise ValueError(f"offer {name}, {role}: {exc}") from None
    if model.handler != offer.handler:
        raise ValueError(
            f"offer {name} runs handler {offer.handler!r} but {role} {model.ref} is called by "
            f"{model.handler!r}"
        )
    return model


def resolve_ref(ref: str, models: list[ModelSpec]) -> ModelSpec:
    """The enabled model version ``ref`` names (its default when unpinned); a ``ValueError``
    naming what is missing otherwise."""
    name, version = split_ref(ref)
    for model in models:
        if model.name != name or not model.enabled:
            continue
        if (version is None and model.default) or model.version == version:
            return model
    if version is None:
        raise ValueError(f"model {name!r} has no enabled default version")
    raise ValueError(f"model {name}@{version} is not an enabled model of the catalog")


def with_fallbacks(route: Route | None, fallbacks: list[Route]) -> Route | None:
    """``route`` calling ``fallbacks`` (those with deployments) when it cannot answer."""
    if route is None or not fallbacks:
        return route
    return route.model_copy(update={"fallbacks": fallbacks})


def _route_object(m: str) -> str:
    return f"""jsonb_build_object(
        'model', {m}.name, 'version', {m}.version, 'provider_model', {m}.provider_model,
        'deployments', {m}.deployments, 'max_attempts', {m}.max_attempts,
        'cooldown_s', {m}.cooldown_s, 'idempotent', {m}.idempotent)"""


def route_sql(name: str, version: str, fallbacks: str | None = None) -> str:
    """SQL of the route (as jsonb, or null) of the model named by the SQL expressions ``name``
    and ``version``: that version, else (``version`` null) the model's enabled default; with
    ``fallbacks`` (an offer's ``fallbacks`` column), those of its fallbacks that have
    deployments, in order. What a job queued again (a re-drive, a pipeline's next step) is
    routed by, read with ``route_from``."""
    more = ""
    if fallbacks is not None:
        more = f""" || jsonb_build_object('fallbacks', (
        SELECT coalesce(jsonb_agg({_route_object("fm")} ORDER BY x.ord), '[]'::jsonb)
        FROM jsonb_array_elements({fallbacks}) WITH ORDINALITY AS x(f, ord)
        JOIN models fm ON fm.enabled AND fm.name = split_part(x.f ->> 'model', '@', 1)
         AND (fm.version = nullif(split_part(x.f ->> 'model', '@', 2), '')
              OR (split_part(x.f ->> 'model', '@', 2) = '' AND fm.is_default))
        WHERE jsonb_array_length(fm.deployments) > 0))"""
    return f"""(SELECT {_route_object("m")}{more}
     FROM models m WHERE m.name = {name}
       AND (m.version = {version} OR ({version} IS NULL AND m.is_default AND m.enabled)))"""


def route_from(value: Any) -> Route | None:
    """The ``Route`` of ``route_sql``'s value; None without one or without deployments."""
    if not value or not value.get("deployments"):
        return None
    return Route.model_validate(value)
