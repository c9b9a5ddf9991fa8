"""Serving the pushed models with TensorFlow Serving: config, client, contract.

`serving/README.md` has the steps: write `models.config` from what the Pusher
pushed, start TF Serving (Compose or Kubernetes), query it with the client.
"""
