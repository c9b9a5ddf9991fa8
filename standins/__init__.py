"""Development stand-ins for systems that cannot run on the machines this
project is developed on. Not product: `setup.py` does not install this
package and the task image does not contain it.

Each module names the real system it stands in for and the source it follows
(`kfp_backend`: the open-source KFP v2 backend; `mlmd_grpc_server`: KFP's
ML Metadata gRPC service; `tf_serving` and `tf_serving_rest`: TensorFlow
Serving's model server and its REST codec). Tests use them where the real
system would run.
"""
