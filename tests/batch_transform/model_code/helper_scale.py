"""A sibling module, imported the way code/ siblings are in the SageMaker container."""


def scale(total: float, factor: float):
    value = total * factor
    return int(value) if value == int(value) else value
