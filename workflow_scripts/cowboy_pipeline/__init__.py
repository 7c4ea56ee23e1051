"""Plumbing for the Snakemake pipeline only: config checks, job start-up, figures, reports,
the robustness suite's and the discriminator study's tables, and the toy runner. The
algorithm lives one level up and never imports from here."""
