"""Pulumi components: one ComponentResource per capability, and their composition."""
