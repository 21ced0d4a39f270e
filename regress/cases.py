"""The regress registry shared by the topic modules: each case registers
itself with @case(name); the runner runs them in order and calls every
teardown at the end."""

CASES = []
TEARDOWNS = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


class Env:
    pass


env = Env()


def check(cond, what):
    if not cond:
        raise AssertionError(what)
