"""What can go wrong with a config, each with a message an operator can act on."""


class ConfigError(Exception):
    """A config that cannot be loaded or stored: bad YAML, a missing variable, a wrong key..."""


class UnknownConfigError(ConfigError):
    def __init__(self, config_id: str, version: str | None = None) -> None:
        if version is None:
            super().__init__(f"no config {config_id!r}")
        elif version == "active":
            super().__init__(f"config {config_id!r} has no active version")
        else:
            super().__init__(f"no version {version!r} of config {config_id!r}")


class VersionExistsError(ConfigError):
    def __init__(self, config_id: str, version: str) -> None:
        super().__init__(f"config {config_id!r} already has a version {version!r}")


class NothingToRollBackError(ConfigError):
    def __init__(self, config_id: str) -> None:
        super().__init__(f"config {config_id!r} has no earlier activation to roll back to")


class ChecksumError(ConfigError):
    def __init__(self, config_id: str, version: str) -> None:
        super().__init__(
            f"version {version!r} of {config_id!r} does not match its checksum: "
            "the stored document was altered"
        )
