class UserExistsError(ValueError):
    pass


class UnknownUserError(LookupError):
    pass


class UnknownKeyError(LookupError):
    pass


class IdentityExistsError(ValueError):
    pass


class BalanceOverflowError(ValueError):
    pass


class InvalidUserNameError(ValueError):
    pass
