# syntax=docker/dockerfile:1
# An example anomaly-detection app on the deucalion base image: the image's default command runs
# an observer from examples/, and the injector starts it as the sidecar of opted-in pods
# (deucalion.io/image: registry.example.com/deucalion-example-app:0.1.0). Build from the
# repository root, after the base image, with your registry's names:
#   docker build -f deploy/docker/Dockerfile -t registry.example.com/deucalion:0.1.0 .
#   docker build -f deploy/docker/example-app.Dockerfile \
#       --build-arg BASE_IMAGE=registry.example.com/deucalion:0.1.0 \
#       -t registry.example.com/deucalion-example-app:0.1.0 .
ARG BASE_IMAGE=deucalion:0.1.0
FROM ${BASE_IMAGE}

# An AD app with more dependencies installs them here, as root, before dropping back:
#   USER root
#   RUN pip install scikit-learn==1.5.*
#   USER 10001:10001
COPY --chown=10001:10001 examples/seed_example.py /app/ad_app.py
# The seed example's stand-in model module (its `pm`), imported from the script's folder.
COPY --chown=10001:10001 examples/stand_in_model.py /app/stand_in_model.py
CMD ["python", "/app/ad_app.py"]
