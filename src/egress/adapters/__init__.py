"""Adapters: implementations of egress's ports for real providers, one package per vendor.

Vendor names live only below this package. ``egress.adapters.stripe`` implements
:class:`egress.payments.PaymentService`.
"""
