# Stand-in for python:3.11.*-slim-bookworm, built where no registry holds it: Debian bookworm
# (debootstrap minbase, imported as DEBIAN_IMAGE) plus this machine's CPython >= 3.11.3 (Debian's
# 3.11.2 fails `pip check` on redis' async-timeout marker), copied into /usr/local as the official
# image has it. The context is the staged interpreter (deployment/docker_engine.py).
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
COPY . /usr/local/
RUN ldconfig && python3 -m pip --version
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
