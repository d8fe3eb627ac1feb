"""Batch scoring (what SageMaker Batch Transform does): every CSV object under an S3 prefix scored with a registry
version by the inference package's model and answers, one object per invocation of a Step Functions Distributed
Map (``infra/constructs/batch_scoring.py``).

``layout`` owns the keys, ``settings`` the environment, ``scoring`` one object, ``job`` resolving a request and
summarising a run, ``handlers`` the three Lambda entry points.
"""
