"""Report exports: a user's CSV in, summary statistics and a chart out, as PDF and CSV.

The web tier validates the upload and queues `reports.build`; the worker
does everything slow. Modules here never import Flask, and only
`app.reports.render` imports the PDF library, from inside the job.
"""
