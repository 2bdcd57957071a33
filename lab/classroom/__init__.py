"""Classes: one lab per student, built, reset, graded and taken down together.

A class is the lab file (every student's lab is made from it) plus a roster (who the
students are). `plan` turns both into one LabSpec per student whose names and addresses
never collide; `runner` does bounded parallel work over those labs; `record` keeps what the
class did (assignments, last reset); `cards` writes the printable handouts.
"""
