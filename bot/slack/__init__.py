"""Slack surface: Block Kit cards, the Web API notifier, and the bolt app behind /slack/events."""

from bot.slack.app import SlackIntegration, create_slack_app
from bot.slack.notifier import SlackNotifier
from bot.slack.settings import SlackSettings

__all__ = ["SlackIntegration", "SlackNotifier", "SlackSettings", "create_slack_app"]
