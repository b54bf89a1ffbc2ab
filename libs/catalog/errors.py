"""What writing the catalog refuses, shared by its writers (``apply``, ``model_store``)."""


class UnknownReferenceError(ValueError):
    """A catalog entry names a handler, model or offer that the catalog does not hold."""


class ModelInUseError(ValueError):
    """A change would leave an enabled offer without a model version to route to."""
