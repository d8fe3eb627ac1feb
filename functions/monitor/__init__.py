"""The drift and live-quality monitor: a scheduled Lambda that compares the champion's captured traffic with its
training baseline, measures its accuracy where ground truth arrived, and publishes CloudWatch metrics and a report.

- :mod:`.drift`: population stability index, per feature and for the predictions (numpy only);
- :mod:`.quality`: accuracy, F1, RMSE, MAE over the pairs of the one join (:mod:`functions.common.labelled`);
- :mod:`.report`: one monitoring window evaluated into a report;
- :mod:`.metrics`: the metrics a report publishes, named by the contract in :mod:`functions.common.metrics`;
- :mod:`.chart`: the PNG bar chart of the most drifted features (matplotlib, imported lazily);
- :mod:`.adapters`: S3 (captures, feedback, reports) and the metrics as embedded metric format log lines;
- :mod:`.run`: one run, wiring the above; :mod:`.handler`: the Lambda entry point.
"""
