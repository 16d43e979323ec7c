"""The embedded RunPod's management API: a GraphQL schema written from the platform's documented
shapes (seeds, the SDK's own queries), validated by graphql-core.

Fields that do not exist on RunPod are not in the schema, so a query asking for
``myself.serverlessWorkers`` or ``endpoint.workers`` fails validation here as it does there.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, GraphQLScalarType, build_schema, execute_sync, parse, validate
from graphql.error import GraphQLSyntaxError

from ..api.models import GPU_POOLS
from ..errors import ControlPlaneError
from .engine import Engine
from .stock import stock_status
from .v2.account import ssh_keys

SDL = """
scalar Void

type Query {
  myself: User
  gpuTypes(input: GpuTypeFilter): [GpuType]
}

type Mutation {
  saveTemplate(input: SaveTemplateInput): PodTemplate
  deleteTemplate(templateName: String): Void
  saveEndpoint(input: EndpointInput): Endpoint
  deleteEndpoint(id: String): Void
  updateEndpointTemplate(input: UpdateEndpointTemplateInput): Endpoint
  createNetworkVolume(input: CreateNetworkVolumeInput): NetworkVolume
  saveRegistryAuth(input: SaveRegistryAuthInput): ContainerRegistryAuth
  updateRegistryAuth(input: UpdateRegistryAuthInput): ContainerRegistryAuth
  deleteRegistryAuth(registryAuthId: String): Void
}

type User {
  id: String
  email: String
  pubKey: String
  clientBalance: Float
  currentSpendPerHr: Float
  spendLimit: Int
  endpoints: [Endpoint]
  endpoint(id: String): Endpoint
  networkVolumes: [NetworkVolume]
  containerRegistryCreds: [ContainerRegistryAuth]
  podTemplates: [PodTemplate]
}

type Endpoint {
  id: String
  name: String
  templateId: String
  template: PodTemplate
  gpuIds: String
  gpuCount: Int
  idleTimeout: Int
  locations: String
  networkVolumeId: String
  networkVolume: NetworkVolume
  scalerType: String
  scalerValue: Int
  workersMin: Int
  workersMax: Int
  workersStandby: Int
  flashBootType: String
  allowedCudaVersions: String
  executionTimeoutMs: Int
  type: String
  userId: String
  version: Int
  aiKey: String
  createdAt: String
  env: [EnvironmentVariable]
}

type PodTemplate {
  id: String
  name: String
  imageName: String
  dockerArgs: String
  containerDiskInGb: Int
  volumeInGb: Int
  volumeMountPath: String
  ports: String
  env: [EnvironmentVariable]
  isServerless: Boolean
  containerRegistryAuthId: String
  readme: String
  startSsh: Boolean
  startJupyter: Boolean
  isPublic: Boolean
  advancedStart: Boolean
}

type EnvironmentVariable { key: String value: String }
type NetworkVolume { id: String name: String size: Int dataCenterId: String }
type ContainerRegistryAuth { id: String name: String }
type LowestPrice { minimumBidPrice: Float uninterruptablePrice: Float stockStatus: String }

type GpuType {
  id: String
  displayName: String
  manufacturer: String
  memoryInGb: Int
  cudaCores: Int
  secureCloud: Boolean
  communityCloud: Boolean
  securePrice: Float
  communityPrice: Float
  oneMonthPrice: Float
  threeMonthPrice: Float
  oneWeekPrice: Float
  communitySpotPrice: Float
  secureSpotPrice: Float
  maxGpuCount: Int
  lowestPrice(input: GpuLowestPriceInput): LowestPrice
}

enum FlashBootType { OFF FLASHBOOT }

input GpuTypeFilter { id: String ids: [String] }
input GpuLowestPriceInput { gpuCount: Int }
input EnvironmentVariableInput { key: String! value: String }

input SaveTemplateInput {
  id: String
  name: String
  imageName: String
  dockerArgs: String!
  containerDiskInGb: Int
  volumeInGb: Int
  volumeMountPath: String
  ports: String
  env: [EnvironmentVariableInput]
  isServerless: Boolean
  containerRegistryAuthId: String
  startSsh: Boolean
  startJupyter: Boolean
  isPublic: Boolean
  readme: String
  advancedStart: Boolean
  startScript: String
}

input EndpointInput {
  id: String
  name: String
  templateId: String
  gpuIds: String
  gpuCount: Int
  idleTimeout: Int
  locations: String
  networkVolumeId: String
  scalerType: String
  scalerValue: Int
  workersMin: Int
  workersMax: Int
  flashBootType: FlashBootType
  allowedCudaVersions: String
  executionTimeoutMs: Int
}

input UpdateEndpointTemplateInput { endpointId: String! templateId: String! }
input CreateNetworkVolumeInput { name: String! size: Int! dataCenterId: String! }
input SaveRegistryAuthInput { name: String! username: String! password: String! }
input UpdateRegistryAuthInput { id: String! username: String! password: String! }
"""

#: Local stand-ins for the GPU types behind each serverless pool.
_GPU_TYPES = [
    ("NVIDIA RTX A4000", "AMPERE_16", 16), ("NVIDIA RTX A5000", "AMPERE_24", 24),
    ("NVIDIA GeForce RTX 4090", "ADA_24", 24), ("NVIDIA GeForce RTX 5090", "ADA_32_PRO", 32),
    ("NVIDIA RTX A6000", "AMPERE_48", 48), ("NVIDIA L40S", "ADA_48_PRO", 48),
    ("NVIDIA A100 80GB PCIe", "AMPERE_80", 80), ("NVIDIA H100 80GB HBM3", "ADA_80_PRO", 80),
    ("NVIDIA H200", "HOPPER_141", 141),
]


class ManagementAPI:
    """Schema + resolvers bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.schema = build_schema(SDL)
        void = self.schema.type_map["Void"]
        assert isinstance(void, GraphQLScalarType)
        void.serialize = lambda value: None  # type: ignore[method-assign]
        query = self.schema.query_type.fields  # type: ignore[union-attr]
        query["myself"].resolve = lambda *_: self._myself()
        query["gpuTypes"].resolve = lambda _src, _info, input=None: self._gpu_types(input or {})
        mutation = self.schema.mutation_type.fields  # type: ignore[union-attr]
        catalog = engine.catalog
        mutation["saveTemplate"].resolve = lambda _s, _i, input: self._template(catalog.save_template(_env_in(input)))
        mutation["deleteTemplate"].resolve = lambda _s, _i, templateName: catalog.delete_template(templateName)
        mutation["saveEndpoint"].resolve = lambda _s, _i, input: self._endpoint(catalog.save_endpoint(dict(input)))
        mutation["deleteEndpoint"].resolve = lambda _s, _i, id: catalog.delete_endpoint(id)
        mutation["updateEndpointTemplate"].resolve = lambda _s, _i, input: self._endpoint(
            catalog.save_endpoint({"id": input["endpointId"], "templateId": input["templateId"]})
        )
        mutation["createNetworkVolume"].resolve = lambda _s, _i, input: self._create_volume(input)
        mutation["saveRegistryAuth"].resolve = lambda _s, _i, input: self._save_registry_auth(input)
        mutation["updateRegistryAuth"].resolve = lambda _s, _i, input: self._update_registry_auth(input)
        mutation["deleteRegistryAuth"].resolve = lambda _s, _i, registryAuthId: catalog.remove_registry_auth(registryAuthId)

    def handle(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """One GraphQL POST body → (HTTP status, response body)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return 400, {"errors": [{"message": "Expected a JSON body with a 'query' string."}]}
        variables, operation = payload.get("variables"), payload.get("operationName")
        if variables is not None and not isinstance(variables, dict):
            return 400, {"errors": [{"message": "'variables' must be a JSON object (or null)."}]}
        if operation is not None and not isinstance(operation, str):
            return 400, {"errors": [{"message": "'operationName' must be a string (or null)."}]}
        try:
            document = parse(payload["query"])
            problems = validate(self.schema, document)
            if problems:
                return 400, {"errors": [p.formatted for p in problems]}
            result = execute_sync(  # every resolver here is synchronous
                self.schema, document, variable_values=variables or None, operation_name=operation,
            )
        except GraphQLSyntaxError as exc:
            return 400, {"errors": [exc.formatted]}
        except RecursionError:
            return 400, {"errors": [{"message": "The query is nested too deeply; flatten it."}]}
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [_error(e) for e in result.errors]
        return 200, body

    # -- views ---------------------------------------------------------------------------------
    def _myself(self) -> dict[str, Any]:
        engine, catalog = self.engine, self.engine.catalog
        return {
            "id": "user_local",
            "email": "local@runpod-jupyter",
            "pubKey": "\n".join(ssh_keys(engine.store)),  # what PUT /v2/account/ssh-keys set
            "clientBalance": round(engine.billing.current_balance(), 6),
            "currentSpendPerHr": round(engine.billing.spend_per_hour(), 6),
            "spendLimit": None,
            "endpoints": lambda *_: [self._endpoint(catalog.endpoint_view(ep)) for ep in engine.endpoints.values()],
            "endpoint": lambda _info, id=None: (
                self._endpoint(catalog.endpoint_view(engine.endpoints[id])) if id in engine.endpoints else None
            ),
            "networkVolumes": lambda *_: list(catalog.volumes.values()),
            "containerRegistryCreds": lambda *_: [
                {"id": a["id"], "name": a["name"]} for a in catalog.registry_auths.values()
            ],
            "podTemplates": lambda *_: [self._template(t) for t in catalog.templates.values()],
        }

    def _endpoint(self, data: dict[str, Any]) -> dict[str, Any]:
        volume = self.engine.catalog.volumes.get(data.get("networkVolumeId") or "")
        template = data.get("template")
        return {
            **data,
            "template": self._template(template) if template else None,
            "networkVolume": volume,
            "type": "QB",
            "aiKey": None,
            "env": (template or {}).get("env") or [],
        }

    @staticmethod
    def _template(data: dict[str, Any]) -> dict[str, Any]:
        return {"startSsh": False, "startJupyter": False, "isPublic": False, "advancedStart": False, **data}

    def _gpu_types(self, filter_: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = set(filter_.get("ids") or []) | ({filter_["id"]} if filter_.get("id") else set())
        out = []
        levels = {pool: row["availability"] for pool, row in self.engine.fleet.stock().items()}
        for name, pool, memory in _GPU_TYPES:
            if wanted and name not in wanted:
                continue
            price = GPU_POOLS[pool].price_per_second * 3600
            status = stock_status(levels.get(pool, "HIGH"))
            out.append({
                "id": name, "displayName": name.replace("NVIDIA ", "").replace("GeForce ", ""),
                "manufacturer": "Nvidia", "memoryInGb": memory, "cudaCores": 0,
                "secureCloud": True, "communityCloud": True,
                "securePrice": round(price, 2), "communityPrice": round(price * 0.8, 2),
                "oneMonthPrice": None, "threeMonthPrice": None, "oneWeekPrice": None,
                "communitySpotPrice": None, "secureSpotPrice": None, "maxGpuCount": 8,
                "lowestPrice": lambda _info, input=None, p=price, s=status: {
                    "minimumBidPrice": round(p * 0.5, 2), "uninterruptablePrice": round(p, 2), "stockStatus": s,
                },
            })
        return out

    def _create_volume(self, given: dict[str, Any]) -> dict[str, Any]:
        if int(given["size"]) < 1:
            raise ControlPlaneError("size must be at least 1 GB.")
        return self.engine.catalog.add_volume(
            {"name": given["name"], "size": int(given["size"]), "dataCenterId": given["dataCenterId"]}
        )

    def _save_registry_auth(self, given: dict[str, Any]) -> dict[str, Any]:
        auth = self.engine.catalog.add_registry_auth(given["name"], given["username"], given["password"])
        return {"id": auth["id"], "name": auth["name"]}

    def _update_registry_auth(self, given: dict[str, Any]) -> dict[str, Any]:
        auth = self.engine.catalog.update_registry_auth(given["id"], given["username"], given["password"])
        return {"id": auth["id"], "name": auth["name"]}


def _env_in(given: dict[str, Any]) -> dict[str, Any]:
    out = dict(given)
    if out.get("env") is not None:
        out["env"] = [{"key": e["key"], "value": e.get("value") or ""} for e in out["env"]]
    out.pop("startScript", None)
    return out


def _error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    if isinstance(error.original_error, ControlPlaneError):
        formatted["message"] = str(error.original_error)
    return formatted
