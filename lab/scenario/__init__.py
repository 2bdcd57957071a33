"""Scenarios: scripted, self-checking teaching runs on a lab.

A scenario file (scenarios/*.yaml) is loaded into a model (model.py, loader.py), its steps
run where they say (targets.py) with their waits (waits.py) and checks (checks.py), shown as a
teacher would type them (display.py), and recorded for graders (journal.py). runner.py ties
these together; catalog.py finds scenario files by name.
"""
