"""Files on disk: loaders of policy, portfolio and reference-data files (YAML or JSON).

Owns reading and validating those files into models, with errors naming the file and the
field. Exposes nothing here: import from `policy_files`, `portfolio_files` or
`reference_files`. Shared by `api.http` and `api.cli`; may import `models`, `engine` and
`api.field_messages`, never `api.http` or `api.cli`.
"""
