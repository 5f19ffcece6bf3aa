@echo off
rem Wazuh active-response program "cordon-ar" for Windows agents.
rem <executable> on Windows takes a file name in active-response\bin only, so this
rem wrapper starts cordon.exe; wazuh-execd speaks its stdin/stdout protocol with it.
rem Install as C:\Program Files (x86)\ossec-agent\active-response\bin\cordon-ar.cmd
rem and restart the Wazuh agent (execd remembers "command not present" until then).
rem Without a --server in the message, an isolation keeps the managers of the agent's
rem ossec.conf (<client><server>) reachable; with none it is refused.
rem The Wazuh agent is a 32-bit program: its cmd.exe sees %ProgramFiles% as
rem "C:\Program Files (x86)" (WOW64), while cordon.exe is installed in the 64-bit
rem "C:\Program Files" (trial29 M3). %ProgramW6432% names that one for 32- and 64-bit
rem processes alike; a 32-bit Windows has only %ProgramFiles%.
setlocal
set "CORDON_EXE=%ProgramW6432%\Cordon\cordon.exe"
if not defined ProgramW6432 set "CORDON_EXE=%ProgramFiles%\Cordon\cordon.exe"
"%CORDON_EXE%" wazuh-ar --log "%~dp0..\active-responses.log" --ossec-conf "%~dp0..\..\ossec.conf" %*
