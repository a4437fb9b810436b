# The GPU worker image: the web code plus torch (CUDA build), transformers and peft.
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# python3-grammalecte: the French grammar checker every draft goes through (generation/grammar.py
# imports it from /usr/lib/python3/dist-packages, GRAMMALECTE_PATH).
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        python3-grammalecte \
    && rm -rf /var/lib/apt/lists/* && python3.11 -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /app
COPY requirements.lock pyproject.toml ./
# torch==2.13.0 from PyPI is the CUDA build on Linux. llama-cpp-python and gguf serve the
# tests' inference server only (compiled from source: no compiler in this image).
RUN grep -v -E '^(llama_cpp_python|gguf)==' requirements.lock > requirements-worker.lock \
    && pip install -r requirements-worker.lock
COPY . .
RUN useradd --create-home app && chown -R app /app \
    && mkdir -p /training /models/versions && chown -R app /training /models
USER app
