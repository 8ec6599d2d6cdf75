"""The part of Edgehog's tenant GraphQL schema the stand-in serves: only what fleetsim's client uses.

Type, field, argument and enum names are Edgehog's (frontend/src/api/schema.graphql of
edgehog-device-manager/edgehog); filters keep only `eq` / `in`, connections only `first` / `after`. graphql-core
validates every request against it, so a document fleetsim sends that Edgehog would reject for a wrong name or
type is rejected here too (within this subset).
"""

SDL = """
schema { query: RootQueryType mutation: RootMutationType }
scalar Upload
scalar Json

type PageInfo { hasPreviousPage: Boolean! hasNextPage: Boolean! startCursor: String endCursor: String }
type MutationError { message: String shortMessage: String vars: Json code: String fields: [String!] path: [String!] }

enum OtaOperationStatus { ACKNOWLEDGED DEPLOYED DEPLOYING DOWNLOADING ERROR FAILURE PENDING REBOOTING SUCCESS }
enum OtaOperationStatusCode { CANCELED INTERNAL_ERROR INVALID_BASE_IMAGE INVALID_REQUEST IO_ERROR NETWORK_ERROR
  REQUEST_TIMEOUT SYSTEM_ROLLBACK UPDATE_ALREADY_IN_PROGRESS }
enum CampaignStatus { FINISHED IDLE IN_PROGRESS PAUSED PAUSING SCHEDULED }
enum CampaignOutcome { FAILURE SUCCESS }
enum CampaignTargetStatus { FAILED IDLE IN_PROGRESS SUCCESSFUL }

type OtaOperation { id: ID! baseImageUrl: String! status: OtaOperationStatus! statusProgress: Int!
  statusCode: OtaOperationStatusCode }
type OtaOperationEdge { cursor: String! node: OtaOperation! }
type OtaOperationConnection { count: Int pageInfo: PageInfo! edges: [OtaOperationEdge!] }

type Device { id: ID! deviceId: String! name: String! online: Boolean!
  otaOperations(first: Int, after: String): OtaOperationConnection! }
type DeviceEdge { cursor: String! node: Device! }
type DeviceConnection { count: Int pageInfo: PageInfo! edges: [DeviceEdge!] }
input DeviceFilterDeviceId { eq: String in: [String!] }
input DeviceFilterInput { deviceId: DeviceFilterDeviceId }

input HandleEq { eq: String }
type HardwareType { id: ID! handle: String! name: String! }
type HardwareTypeEdge { cursor: String! node: HardwareType! }
type HardwareTypeConnection { pageInfo: PageInfo! edges: [HardwareTypeEdge!] }
input HardwareTypeFilterInput { handle: HandleEq }
type SystemModel { id: ID! handle: String! name: String! }
type SystemModelEdge { cursor: String! node: SystemModel! }
type SystemModelConnection { pageInfo: PageInfo! edges: [SystemModelEdge!] }
input SystemModelFilterInput { handle: HandleEq }
type BaseImage { id: ID! version: String! url: String! }
type BaseImageEdge { cursor: String! node: BaseImage! }
type BaseImageConnection { pageInfo: PageInfo! edges: [BaseImageEdge!] }
input BaseImageFilterInput { version: HandleEq }
type BaseImageCollection { id: ID! name: String! handle: String!
  baseImages(filter: BaseImageFilterInput, first: Int, after: String): BaseImageConnection! }
type BaseImageCollectionEdge { cursor: String! node: BaseImageCollection! }
type BaseImageCollectionConnection { pageInfo: PageInfo! edges: [BaseImageCollectionEdge!] }
input BaseImageCollectionFilterInput { handle: HandleEq }
type DeviceGroup { id: ID! name: String! handle: String! selector: String! }
type DeviceGroupEdge { cursor: String! node: DeviceGroup! }
type DeviceGroupConnection { pageInfo: PageInfo! edges: [DeviceGroupEdge!] }
input DeviceGroupFilterInput { handle: HandleEq }
type Channel { id: ID! handle: String! name: String! }
type ChannelEdge { cursor: String! node: Channel! }
type ChannelConnection { pageInfo: PageInfo! edges: [ChannelEdge!] }
input ChannelFilterInput { handle: HandleEq }

type CampaignTarget { id: ID! status: CampaignTargetStatus! retryCount: Int! device: Device!
  otaOperation: OtaOperation }
type CampaignTargetEdge { cursor: String! node: CampaignTarget! }
type CampaignTargetConnection { count: Int pageInfo: PageInfo! edges: [CampaignTargetEdge!] }
type Campaign { id: ID! name: String! status: CampaignStatus! outcome: CampaignOutcome
  campaignTargets(first: Int, after: String): CampaignTargetConnection!
  totalTargetCount: Int! idleTargetCount: Int! inProgressTargetCount: Int! failedTargetCount: Int!
  successfulTargetCount: Int! }

input AddDeviceTagsInput { tags: [String!]! }
input CreateHardwareTypeInput { handle: String! name: String! partNumbers: [String!]! }
input CreateSystemModelInput { handle: String! name: String! pictureUrl: String hardwareTypeId: ID!
  partNumbers: [String!]! }
input CreateBaseImageCollectionInput { name: String! handle: String! systemModelId: ID! }
input CreateBaseImageInput { version: String! startingVersionRequirement: String baseImageCollectionId: ID!
  file: Upload! }
input CreateDeviceGroupInput { name: String! handle: String! selector: String! }
input CreateChannelInput { handle: String! name: String! targetGroupIds: [ID!] }
input CampaignCampaignMechanismFirmwareUpgradeInput { baseImageId: ID forceDowngrade: Boolean
  maxFailurePercentage: Float maxInProgressOperations: Int requestRetries: Int requestTimeoutSeconds: Int }
input CampaignMechanismInput { firmwareUpgrade: CampaignCampaignMechanismFirmwareUpgradeInput }
input CreateCampaignInput { name: String! campaignMechanism: CampaignMechanismInput! channelId: ID! }
input CreateManualOtaOperationInput { deviceId: ID! baseImageFile: Upload baseImageUrl: String }

type AddDeviceTagsResult { result: Device errors: [MutationError!]! }
type CreateHardwareTypeResult { result: HardwareType errors: [MutationError!]! }
type CreateSystemModelResult { result: SystemModel errors: [MutationError!]! }
type CreateBaseImageCollectionResult { result: BaseImageCollection errors: [MutationError!]! }
type CreateBaseImageResult { result: BaseImage errors: [MutationError!]! }
type CreateDeviceGroupResult { result: DeviceGroup errors: [MutationError!]! }
type CreateChannelResult { result: Channel errors: [MutationError!]! }
type CreateCampaignResult { result: Campaign errors: [MutationError!]! }
type CreateManualOtaOperationResult { result: OtaOperation errors: [MutationError!]! }

type RootQueryType {
  devices(filter: DeviceFilterInput, first: Int, after: String): DeviceConnection
  device(id: ID!): Device
  hardwareTypes(filter: HardwareTypeFilterInput, first: Int, after: String): HardwareTypeConnection
  systemModels(filter: SystemModelFilterInput, first: Int, after: String): SystemModelConnection
  baseImageCollections(filter: BaseImageCollectionFilterInput, first: Int, after: String):
    BaseImageCollectionConnection
  baseImageCollection(id: ID!): BaseImageCollection
  deviceGroups(filter: DeviceGroupFilterInput, first: Int, after: String): DeviceGroupConnection
  channels(filter: ChannelFilterInput, first: Int, after: String): ChannelConnection
  campaign(id: ID!): Campaign
}

type RootMutationType {
  addDeviceTags(id: ID!, input: AddDeviceTagsInput!): AddDeviceTagsResult
  createHardwareType(input: CreateHardwareTypeInput!): CreateHardwareTypeResult
  createSystemModel(input: CreateSystemModelInput!): CreateSystemModelResult
  createBaseImageCollection(input: CreateBaseImageCollectionInput!): CreateBaseImageCollectionResult
  createBaseImage(input: CreateBaseImageInput!): CreateBaseImageResult
  createDeviceGroup(input: CreateDeviceGroupInput!): CreateDeviceGroupResult
  createChannel(input: CreateChannelInput!): CreateChannelResult
  createCampaign(input: CreateCampaignInput!): CreateCampaignResult
  createManualOtaOperation(input: CreateManualOtaOperationInput!): CreateManualOtaOperationResult
}
"""
