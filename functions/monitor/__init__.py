"""The drift and live-quality monitor: a scheduled Lambda that compares the champion's captured traffic with its
training baseline, measures its accuracy where ground truth arrived, and publishes CloudWatch metrics and a report.

- :mod:`.queries`: the Athena SQL that bins the window's captures and joins its feedback, and its result rows;
- :mod:`.drift`: population stability index, per feature and for the predictions, from Athena's bin counts;
- :mod:`.quality`: accuracy, F1, RMSE, MAE from the join's aggregates;
- :mod:`.report`: one monitoring window evaluated into a report;
- :mod:`.metrics`: the metrics a report publishes, named by the contract in :mod:`functions.common.metrics`;
- :mod:`.chart`: the PNG bar chart of the most drifted features (matplotlib, imported lazily);
- :mod:`.adapters`: reports to S3 and the metrics as embedded metric format log lines;
- :mod:`.run`: one run, wiring the above; :mod:`.handler`: the Lambda entry point.
"""
