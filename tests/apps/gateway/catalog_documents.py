"""GraphQL documents of the catalog gateway tests."""

MODELS = """
query($search: String, $owner: String, $tags: [String!], $ordering: String) {
  catalogModels(first: 10, search: $search, owner: $owner, tags: $tags, ordering: $ordering) {
    totalCount
    facets
    edges { node { id handle owner name visibility status qualityScore latestVersion { version } } }
  }
}
"""
MODEL = """
query($slug: String!) {
  catalogModel(slug: $slug) {
    id handle owner tags
    latestVersion { version }
    versions(first: 5) {
      totalCount
      edges { node { id version status artifacts { uri sizeBytes } servedBy { modelId status }
        evaluations(first: 5) { totalCount edges { node { id benchmarkName score version model { handle } } } } } }
    }
  }
}
"""
MODEL_VERSION = """
query($slug: String!, $version: String!) {
  modelVersion(slug: $slug, version: $version) { id version model { handle } evaluations { totalCount } }
}
"""
NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename
    ... on CatalogModelNode { handle }
    ... on ModelVersionNode { version }
    ... on EvaluationNode { benchmarkName }
    ... on DatasetNode { handle }
    ... on TrainingRunNode { name }
  }
}
"""
EVALUATIONS = """
query($model: String, $benchmark: String) {
  evaluations(first: 20, model: $model, benchmark: $benchmark) {
    totalCount edges { node { id benchmarkName score status model { handle } modelVersion { version } } }
  }
}
"""
LINEAGE = """
query($slug: String!, $depth: Int, $version: String) {
  lineage(slug: $slug, depth: $depth, version: $version) {
    model version depth width height
    nodes { id kind label ref relation depth }
    edges { source target type points }
  }
}
"""
LEADERBOARD = """
query($benchmark: String) {
  leaderboard(first: 10, benchmark: $benchmark) { totalCount edges { node { rank model version score benchmark } } }
}
"""
DATASETS = """
query($owner: String, $commercialUse: Boolean) {
  datasets(first: 10, owner: $owner, commercialUse: $commercialUse) {
    totalCount edges { node { id handle owner visibility sources { type uri } certifications } }
  }
}
"""
DATASET = "query($ref: String!) { dataset(ref: $ref) { id handle name } }"
TRAINING_RUNS = """
query {
  trainingRuns(first: 10) {
    totalCount
    edges { node { id name owner status costUsd hyperparameters datasets { handle } modelVersion { version } } }
  }
}
"""
NESTED = """
query($first: Int!) {
  catalogModels(first: $first, ordering: "name") {
    edges { node {
      handle owner latestVersion { version }
      versions(first: 5) { totalCount edges { node {
        version servedBy { modelId }
        evaluations(first: 5) { totalCount edges { node { benchmarkName score version } } }
      } } }
    } }
  }
}
"""

ERRORS = "errors { field message code }"
MODEL_CREATE = f"""
mutation($input: CatalogModelCreateInput!) {{
  modelCreate(input: $input) {{ model {{ handle status visibility commercialUse tags }} {ERRORS} }}
}}
"""
MODEL_UPDATE = f"""
mutation($slug: String!, $input: CatalogModelUpdateInput!) {{
  modelUpdate(slug: $slug, input: $input) {{ model {{ handle status description visibility }} {ERRORS} }}
}}
"""
MODEL_ARCHIVE = f"mutation($slug: String!) {{ modelArchive(slug: $slug) {{ model {{ status }} {ERRORS} }} }}"
VERSION_CREATE = f"""
mutation($slug: String!, $input: ModelVersionCreateInput!) {{
  modelVersionCreate(slug: $slug, input: $input) {{
    modelVersion {{ id version status sizeBytes artifacts {{ sha256 }} servedBy {{ serviceVersionId }} }} {ERRORS}
  }}
}}
"""
VERSION_UPDATE = f"""
mutation($slug: String!, $version: String!, $input: ModelVersionFieldsInput!) {{
  modelVersionUpdate(slug: $slug, version: $version, input: $input) {{
    modelVersion {{ version status changelog p95LatencyMs servedBy {{ serviceVersionId modelId }} }} {ERRORS}
  }}
}}
"""
EDGE_ADD = f"""
mutation($slug: String!, $input: LineageEdgeInput!) {{
  lineageEdgeAdd(slug: $slug, input: $input) {{ edge {{ source target type }} {ERRORS} }}
}}
"""
DATASET_CREATE = f"""
mutation($input: DatasetCreateInput!) {{
  datasetCreate(input: $input) {{ dataset {{ id handle commercialUse sources {{ type }} }} {ERRORS} }}
}}
"""
DATASET_UPDATE = f"""
mutation($ref: String!, $input: DatasetFieldsInput!) {{
  datasetUpdate(ref: $ref, input: $input) {{ dataset {{ handle piiDetected piiRemoved }} {ERRORS} }}
}}
"""
RUN_CREATE = f"""
mutation($input: TrainingRunCreateInput!) {{
  trainingRunCreate(input: $input) {{
    trainingRun {{ id name status costUsd durationSeconds datasets {{ handle }} modelVersion {{ version }} }} {ERRORS}
  }}
}}
"""
EVALUATION_CREATE = f"""
mutation($input: EvaluationCreateInput!) {{
  evaluationCreate(input: $input) {{ evaluation {{ id benchmarkName dimension score status }} {ERRORS} }}
}}
"""
EVALUATION_UPDATE = f"""
mutation($id: ID!, $input: EvaluationFieldsInput!) {{
  evaluationUpdate(id: $id, input: $input) {{ evaluation {{ score status }} {ERRORS} }}
}}
"""
EVALUATION_DELETE = f"mutation($id: ID!) {{ evaluationDelete(id: $id) {{ ok {ERRORS} }} }}"
