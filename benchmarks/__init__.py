"""The workloads behind `ledger bench`, with the peer baselines they are compared to."""
