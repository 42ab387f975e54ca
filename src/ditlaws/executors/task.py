"""What one submitit job runs (on a Slurm node, or in a local process in tests): the sweep job's command.

The job is the command `python -m ditlaws.sweep job RUN_DIR`, under `accelerate launch` when the run uses several
processes; on several nodes each node's task launches its share, rank and rendezvous host taken from Slurm
(submitit's JobEnvironment). The command's output goes to the job's log (`<out>/jobs/<job id>/..._log.out`).
"""

from __future__ import annotations

import subprocess

from ditlaws.executors.launch import Launch, free_port, job_command, job_env, shell_command


def run_in_job(run_dir: str, launch: Launch, cwd: str) -> str:
    import submitit

    env = submitit.JobEnvironment()
    main_ip, port = None, None
    if launch.nodes > 1:  # every node must agree on the port: derive it from the job id
        main_ip = env.hostnames[0]
        digits = "".join(ch for ch in env.job_id if ch.isdigit())
        port = str(20000 + int(digits or 0) % 20000)
    elif launch.processes > 1:
        port = free_port()
    cmd = job_command(run_dir, launch, machine_rank=str(env.node), main_ip=main_ip, port=port)
    print(f"$ {shell_command(cmd)}", flush=True)
    code = subprocess.run(cmd, cwd=cwd, env=job_env(launch)).returncode
    if code:
        raise RuntimeError(f"the sweep job exited with code {code} (its output is above)")
    return run_dir
