# Image of the veeam_storage_efficiency Airflow stack (docker-compose.yaml builds it).
# The DAG code is mounted by docker-compose.yaml; this image only adds the pinned Python
# dependencies (requirements.txt: apache-airflow==3.3.2 and its providers).
FROM apache/airflow:3.3.2-python3.11

# The base image runs as the `airflow` user (uid 50000, gid 0); pip installs into its user site.
USER airflow
COPY --chown=airflow:0 requirements.txt /requirements.txt
# Installing apache-airflow at the base image's version with the requirements keeps pip from
# upgrading or downgrading Airflow itself (see the docker-stack "Adding Python packages" docs).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

# Mount point of the shared XCom volume: created here so a fresh named volume inherits an
# airflow-writable directory.
RUN mkdir -p /opt/airflow/xcom
