"""Plumbing for the Snakemake pipeline only: config checks, job start-up, figures, reports and
the toy runner. The algorithm lives one level up and never imports from here."""
