def price(quantity, unit, discount=0):
    if quantity < 0:
        raise ValueError("negative quantity")
    total = quantity * unit
    if discount:
        total = total * (100 - discount) / 100
    return round(total, 2)


def shipping(weight):
    if weight > 20:
        return 15
    return 5
