"""The GraphQL documents fleetsim sends to Edgehog's tenant API (`POST <url>/tenants/<tenant>/api`).

Written against Edgehog's schema (edgehog-device-manager/edgehog, frontend/src/api/schema.graphql, generated
by AshGraphql from backend/lib/edgehog): resources are created with `create<Resource>(input:)` mutations that
return `{result, errors}`, lists are Relay connections (`first`/`after`, at most 250 per page), filters are
`{field: {eq: ...}}`. Update campaigns are campaigns with the `firmwareUpgrade` mechanism; each target gets an
OTA operation whose id is the requestUUID the device is sent, and whose status/statusCode are the last OTAEvent
Edgehog processed (OtaOperation :update_status accepts any status: no terminal-state guard).
"""

from __future__ import annotations

__all__ = [
    "ADD_DEVICE_TAGS",
    "BASE_IMAGES_BY_VERSION",
    "CAMPAIGN_STATUS",
    "CAMPAIGN_TARGETS",
    "CHANNEL_BY_HANDLE",
    "COLLECTION_BY_HANDLE",
    "CREATE_BASE_IMAGE",
    "CREATE_CAMPAIGN",
    "CREATE_CHANNEL",
    "CREATE_COLLECTION",
    "CREATE_DEVICE_GROUP",
    "CREATE_HARDWARE_TYPE",
    "CREATE_MANUAL_OTA",
    "CREATE_SYSTEM_MODEL",
    "DEVICES_BY_ID",
    "DEVICE_OTA_OPERATIONS",
    "GROUP_BY_HANDLE",
    "HARDWARE_TYPE_BY_HANDLE",
    "SYSTEM_MODEL_BY_HANDLE",
]

PAGE = 250  # AshGraphql's maximum page size for connections

DEVICES_BY_ID = """
query FleetsimDevices($ids: [String!]!, $after: String) {
  devices(filter: {deviceId: {in: $ids}}, first: 250, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id deviceId online } }
  }
}"""

ADD_DEVICE_TAGS = """
mutation FleetsimAddDeviceTags($id: ID!, $tags: [String!]!) {
  addDeviceTags(id: $id, input: {tags: $tags}) { result { id } errors { message fields } }
}"""

HARDWARE_TYPE_BY_HANDLE = """
query FleetsimHardwareType($handle: String!) {
  hardwareTypes(filter: {handle: {eq: $handle}}, first: 1) { edges { node { id } } }
}"""

CREATE_HARDWARE_TYPE = """
mutation FleetsimCreateHardwareType($handle: String!, $name: String!, $partNumbers: [String!]!) {
  createHardwareType(input: {handle: $handle, name: $name, partNumbers: $partNumbers}) {
    result { id } errors { message fields }
  }
}"""

SYSTEM_MODEL_BY_HANDLE = """
query FleetsimSystemModel($handle: String!) {
  systemModels(filter: {handle: {eq: $handle}}, first: 1) { edges { node { id } } }
}"""

CREATE_SYSTEM_MODEL = """
mutation FleetsimCreateSystemModel($handle: String!, $name: String!, $hardwareTypeId: ID!,
                                   $partNumbers: [String!]!) {
  createSystemModel(input: {handle: $handle, name: $name, hardwareTypeId: $hardwareTypeId,
                            partNumbers: $partNumbers}) {
    result { id } errors { message fields }
  }
}"""

COLLECTION_BY_HANDLE = """
query FleetsimCollection($handle: String!) {
  baseImageCollections(filter: {handle: {eq: $handle}}, first: 1) { edges { node { id } } }
}"""

CREATE_COLLECTION = """
mutation FleetsimCreateCollection($handle: String!, $name: String!, $systemModelId: ID!) {
  createBaseImageCollection(input: {handle: $handle, name: $name, systemModelId: $systemModelId}) {
    result { id } errors { message fields }
  }
}"""

BASE_IMAGES_BY_VERSION = """
query FleetsimBaseImages($id: ID!, $version: String!) {
  baseImageCollection(id: $id) {
    baseImages(filter: {version: {eq: $version}}, first: 1) { edges { node { id url } } }
  }
}"""

# `file` is an Upload: sent as a GraphQL multipart request (the `map` names variables.file).
CREATE_BASE_IMAGE = """
mutation FleetsimCreateBaseImage($collectionId: ID!, $version: String!, $file: Upload!) {
  createBaseImage(input: {baseImageCollectionId: $collectionId, version: $version, file: $file}) {
    result { id url } errors { message fields }
  }
}"""

GROUP_BY_HANDLE = """
query FleetsimGroup($handle: String!) {
  deviceGroups(filter: {handle: {eq: $handle}}, first: 1) { edges { node { id } } }
}"""

CREATE_DEVICE_GROUP = """
mutation FleetsimCreateGroup($handle: String!, $name: String!, $selector: String!) {
  createDeviceGroup(input: {handle: $handle, name: $name, selector: $selector}) {
    result { id } errors { message fields }
  }
}"""

CHANNEL_BY_HANDLE = """
query FleetsimChannel($handle: String!) {
  channels(filter: {handle: {eq: $handle}}, first: 1) { edges { node { id } } }
}"""

CREATE_CHANNEL = """
mutation FleetsimCreateChannel($handle: String!, $name: String!, $groupIds: [ID!]) {
  createChannel(input: {handle: $handle, name: $name, targetGroupIds: $groupIds}) {
    result { id } errors { message fields }
  }
}"""

CREATE_CAMPAIGN = """
mutation FleetsimCreateCampaign($name: String!, $channelId: ID!,
                                $mechanism: CampaignCampaignMechanismFirmwareUpgradeInput!) {
  createCampaign(input: {name: $name, channelId: $channelId, campaignMechanism: {firmwareUpgrade: $mechanism}}) {
    result { id status } errors { message fields }
  }
}"""

CAMPAIGN_STATUS = """
query FleetsimCampaignStatus($id: ID!) {
  campaign(id: $id) {
    id status outcome totalTargetCount idleTargetCount inProgressTargetCount failedTargetCount
    successfulTargetCount
  }
}"""

CAMPAIGN_TARGETS = """
query FleetsimCampaignTargets($id: ID!, $after: String) {
  campaign(id: $id) {
    campaignTargets(first: 250, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { status retryCount device { deviceId } otaOperation { id status statusCode } } }
    }
  }
}"""

CREATE_MANUAL_OTA = """
mutation FleetsimCreateManualOta($deviceId: ID!, $url: String!) {
  createManualOtaOperation(input: {deviceId: $deviceId, baseImageUrl: $url}) {
    result { id status statusCode } errors { message fields }
  }
}"""

DEVICE_OTA_OPERATIONS = """
query FleetsimDeviceOta($id: ID!) {
  device(id: $id) { deviceId otaOperations(first: 250) { edges { node { id status statusCode } } } }
}"""
