"""Taskonomy (Zamir et al., CVPR 2018) adapted to attributes: transfers, AHP, the budgeted plan.

`plan` holds the maths (tournament, AHP, the binary integer program), `transfer` the source
encoders and readouts, `analysis` the whole measurement and its outputs (`run` does both).
"""
from attrnet.methods.taskonomy.analysis import Settings, analyse, measure_transfers, run, write_outputs
from attrnet.methods.taskonomy.plan import (CLIP, TOP_K, Plan, Transfer, ahp_affinity, brute_force_plan,
                                            budgets_up_to, plan_groups, plan_topology, solve_budgets, solve_plan,
                                            top_pairs, tournament)

__all__ = ["CLIP", "TOP_K", "Plan", "Settings", "Transfer", "ahp_affinity", "analyse", "brute_force_plan",
           "budgets_up_to", "measure_transfers", "plan_groups", "plan_topology", "run", "solve_budgets",
           "solve_plan", "top_pairs", "tournament", "write_outputs"]
