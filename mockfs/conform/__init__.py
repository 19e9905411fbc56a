"""Conformance of any collector: hypothesis examples of machines and fault plans, judged."""
