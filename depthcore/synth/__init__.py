"""Procedural data: a numpy ray caster, scene builders and writers of real dataset formats."""
