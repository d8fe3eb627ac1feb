"""`driftloop`: the command line for people who run the loop (``cli.main``), one module per job.

Local work (generate data, train, serve, predict) needs no AWS account. The registry commands talk to the
model bucket through boto3's usual configuration (profile, region, ``AWS_ENDPOINT_URL`` for a local cloud).
"""
