/** MQTT 5.0 reason codes (§2.4) and the 3.1.1 CONNACK return codes (§3.2.2.3) they map to. */
export const RC = {
  Success: 0x00,
  GrantedQos1: 0x01,
  GrantedQos2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  QosNotSupported: 0x9b,
  SharedSubscriptionsNotSupported: 0x9e,
} as const;

/** 3.1.1 CONNACK return codes [MQTT-3.2.2-4..6 (3.1.1)]; SUBACK failure is 0x80 [MQTT-3.9.3-2 (3.1.1)]. */
export const V4 = { Accepted: 0, UnacceptableProtocolVersion: 1, IdentifierRejected: 2, ServerUnavailable: 3, BadUserNameOrPassword: 4, NotAuthorized: 5, SubackFailure: 0x80 } as const;

/** The 3.1.1 CONNACK code for a 5.0 CONNACK reason code. */
export function connackV4(rc: number): number {
  switch (rc) {
    case RC.Success:
      return V4.Accepted;
    case RC.UnsupportedProtocolVersion:
      return V4.UnacceptableProtocolVersion;
    case RC.ClientIdentifierNotValid:
      return V4.IdentifierRejected;
    case RC.BadUserNameOrPassword:
    case RC.BadAuthenticationMethod:
      return V4.BadUserNameOrPassword;
    case RC.NotAuthorized:
    case RC.TopicNameInvalid:
    case RC.QosNotSupported:
    case RC.PayloadFormatInvalid:
      // The will's refusals: 3.1.1 has no code of its own for them.
      return V4.NotAuthorized;
    default:
      // 0x88 unavailable, 0x97 quota exceeded (too many connections), 0x95 too large: all "try later".
      return V4.ServerUnavailable;
  }
}

/**
 * A platform refusal (HTTP-like status) as a PUBACK/PUBREC reason code. Those packets cannot carry
 * 0x95 Packet too large or 0x96 Message rate too high (DISCONNECT-only codes, §3.4.2.1): a payload
 * over the channel's limit or a rate limit is 0x97 Quota exceeded there.
 */
export function reasonFromStatus(status: number): number {
  switch (status) {
    case 401:
    case 403:
    case 404: // another org's channel looks missing; to the device both are "not authorized"
      return RC.NotAuthorized;
    case 400:
    case 415:
      return RC.PayloadFormatInvalid;
    case 413:
    case 429:
    case 507:
      return RC.QuotaExceeded;
    default:
      return RC.UnspecifiedError;
  }
}

/** For a refused QoS 0 PUBLISH there is no acknowledgement: only these deserve a v5 DISCONNECT. */
export function disconnectFromStatus(status: number): number | null {
  return status === 413 ? RC.PacketTooLarge : status === 429 ? RC.MessageRateTooHigh : null;
}

export type Qos = 0 | 1 | 2;
export const minQos = (a: number, b: number): Qos => Math.max(0, Math.min(a, b, 2)) as Qos;
