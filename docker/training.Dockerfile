# Training / benchmarking image (CPU): the whole workspace installed with pip, no ROS.
#   docker build -f docker/training.Dockerfile -t s2e-training .
#   docker run --rm -v $PWD/runs:/ws/runs s2e-training s2e demo --out runs/demo
FROM python:3.11-slim-bookworm
WORKDIR /ws
COPY requirements.txt requirements-dev.txt ./
COPY src ./src
RUN pip install --no-cache-dir -r requirements-dev.txt
COPY . .
CMD ["s2e", "--help"]
