# The web image: Django, Celery, no torch.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# WeasyPrint (the PDF report cards) needs Pango and a font. python3-grammalecte: the French
# grammar checker a teacher's text goes through at validation (generation/grammar.py imports
# it from /usr/lib/python3/dist-packages, GRAMMALECTE_PATH).
RUN apt-get update && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core python3-grammalecte \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock pyproject.toml ./
# The web lock is the full lock minus the worker's stack (torch, transformers, peft...) and the
# tests' inference server (llama-cpp-python, compiled from source, and gguf).
RUN grep -v -E '^(torch|transformers|peft|accelerate|safetensors|tokenizers|huggingface.hub|hf-xet|sympy|mpmath|networkx|llama_cpp_python|gguf)==' requirements.lock > requirements-web.lock \
    && pip install -r requirements-web.lock
COPY . .
RUN DJANGO_SETTINGS_MODULE=appreciation_site.settings.production DJANGO_SECRET_KEY=build DJANGO_ALLOWED_HOSTS=build \
    python manage.py collectstatic --no-input
RUN useradd --create-home app && chown -R app /app \
    && mkdir -p /training && chown app /training
USER app
EXPOSE 8000
