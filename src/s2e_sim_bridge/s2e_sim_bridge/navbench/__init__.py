"""NavBench-GS: the closed-loop benchmark (tasks, episodes, simulator, agents, metrics).

``s2e navbench`` (:mod:`.cli`) runs an agent through seeded episode sets of the four paper
tasks and writes metrics, plots and videos (:mod:`.report`).
"""
